"""Run configuration: hyper-parameters from default_config.yaml with overrides, and the device.

Every script calls `load_config()`: the defaults, then `--config_path other.yaml` (only the keys it
changes), then `--key value` on the command line, each typed and checked against the default.
"""
import argparse
import atexit
import os
import sys
import tempfile
from pathlib import Path

import yaml

# MindSpore logs a warning for every backend it probes; keep them unless the user asked for them.
os.environ.setdefault("GLOG_v", "3")
# numpy's threaded OpenBLAS is pathologically slow on small 2-core machines; set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# graph-kernel fusion compiles its kernels into this cache rather than the working folder
os.environ.setdefault("MS_COMPILER_CACHE_PATH", str(Path(tempfile.gettempdir()) / "dprnn_mindspore_kernels"))

import mindspore as ms  # noqa: E402  (after GLOG_v)

# the fusion compiler reads its tiling tables from MindSpore's package, outside its default white list
os.environ.setdefault("AKG_WHITE_LIST_PATH", os.path.dirname(ms.__file__))

from model import NORMS, RNNS  # noqa: E402

DEFAULT_CONFIG = Path(__file__).resolve().parent / "default_config.yaml"
DEVICES = ("Ascend", "GPU", "CPU")
CHOICES = {
    "rnn_type": tuple(RNNS),
    "norm": tuple(NORMS),
    "device_target": ("auto",) + DEVICES,
    "mode": ("graph", "pynative"),
    "file_format": ("MINDIR", "AIR", "ONNX"),
    "mix_type": ("mix_clean", "mix_both"),
    "segment_mode": ("fixed", "random"),
    "lr_schedule": ("piecewise", "plateau", "exponential"),
}


class UserError(Exception):
    """A problem with what the user gave us: reported as one line, exit status 1."""


def run_main(main):
    """Call a script's main(); a UserError becomes `error: ...` on stderr and exit status 1."""
    try:
        main()
    except UserError as err:
        sys.exit(f"error: {err}")


class Config:
    """Flat attribute access (`cfg.lr`) over grouped settings (`cfg.group("model")`)."""

    def __init__(self, groups, extra=None):
        self._groups = groups
        self._flat = {key: value for group in groups.values() for key, value in group.items()}
        self._flat.update(extra or {})

    def __getattr__(self, key):
        try:
            return self.__dict__["_flat"][key]
        except KeyError:
            raise AttributeError(key) from None

    def updated(self, **changes):
        """A copy with some settings changed (a script's own decision, not the user's)."""
        groups = {name: {key: changes.get(key, value) for key, value in group.items()}
                  for name, group in self._groups.items()}
        extra = {key: changes.get(key, value) for key, value in self._flat.items()
                 if all(key not in group for group in groups.values())}
        return Config(groups, extra)

    def group(self, name):
        return dict(self._groups[name])

    def as_dict(self):
        return {name: dict(group) for name, group in self._groups.items()}

    def __str__(self):
        return yaml.safe_dump(self.as_dict(), sort_keys=False).rstrip()


def _read_yaml(path):
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as err:
        raise UserError(f"cannot read config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {err}".replace("\n", " ")) from None
    if not isinstance(data, dict) or not all(isinstance(g, dict) for g in data.values()):
        raise UserError(f"{path} must map group names (data, model, ...) to key: value settings")
    return data


def _convert(key, value, default):
    """`value` (YAML value or command-line string) as the type of `default`, or UserError."""
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        if kind is bool:
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise UserError(f"{key} takes true or false, got {value!r}")
            value = text in ("true", "1", "yes")
        else:
            try:
                value = kind(value)
            except ValueError:
                raise UserError(f"{key} takes a {kind.__name__}, got {value!r}") from None
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        raise UserError(f"{key} takes a {kind.__name__}, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise UserError(f"{key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
    return value


def _overlay(groups, path):
    """Apply another YAML file's settings onto the defaults; unknown groups or keys are errors."""
    for name, settings in _read_yaml(path).items():
        if name not in groups:
            raise UserError(f"{path}: unknown group {name!r} (groups: {', '.join(groups)})")
        for key, value in settings.items():
            if key not in groups[name]:
                raise UserError(f"{path}: unknown key {name}.{key}")
            groups[name][key] = _convert(key, value, groups[name][key])


def load_config(argv=None, parser=None, verbose=True):
    """Resolve the configuration of one run.

    parser: the script's own argparse parser for arguments that are not hyper-parameters
    (input files, checkpoint paths); those come back as attributes of the Config too.
    """
    parser = parser or argparse.ArgumentParser()
    parser.allow_abbrev = False
    parser.add_argument("--config_path", default=str(DEFAULT_CONFIG),
                        help="YAML file whose settings replace the defaults")
    groups = _read_yaml(DEFAULT_CONFIG)
    owner = {}
    for name, settings in groups.items():
        for key, default in settings.items():
            owner[key] = name
            # a bare boolean flag (`--skip_bad`) means true
            flag = dict(nargs="?", const="true") if isinstance(default, bool) else {}
            parser.add_argument(f"--{key}", default=None, metavar=type(default).__name__.upper(),
                                help=f"{name}: default {default}", **flag)
    args = parser.parse_args(argv)
    if args.config_path != str(DEFAULT_CONFIG):
        _overlay(groups, args.config_path)
    extra = {}
    for key, value in vars(args).items():
        if key in owner:
            if value is not None:
                groups[owner[key]][key] = _convert(key, value, groups[owner[key]][key])
        else:
            extra[key] = value
    cfg = Config(groups, extra)
    if verbose:
        print(f"config ({args.config_path} + command line):\n{cfg}", flush=True)
    return cfg


def available_devices():
    """Device targets this machine's MindSpore can use, preferred first."""
    return [d for d in DEVICES if d == "CPU" or ms.hal.is_available(d)]


def enable_kernel_fusion():
    """Fuse chains of element-wise ops and reductions into compiled kernels (graph mode).

    On CPU this makes a training step of the default model ~30% faster and halves its memory
    (1 x 4 s: 18.1 s and 17.6 GB without, 13 s and 7.2 GB with): the normalisations, gates, loss
    and Adam become a few fused kernels instead of dozens of memory passes. The fusion compiler leaves
    a log in the working folder, removed at exit unless it was there before.
    """
    # Two ops stay out of fusion in MindSpore 2.10: fused Tanh is a fast approximation (errors of
    # ~2e-4 in the separated output), and a fused Square in the training step's gradient norm gave
    # wrong norms (156 instead of 130, so wrong clipping; tests/test_train_step.py catches it).
    ms.set_context(enable_graph_kernel=True,
                   graph_kernel_flags="--disable_expand_ops=Tanh,Square --disable_cluster_ops=Tanh,Square")
    log = Path("dsa_transfrom.log").resolve()
    if not log.exists():
        atexit.register(log.unlink, missing_ok=True)


def setup_device(cfg):
    """Set MindSpore's device and execution mode from cfg; returns the device target used."""
    available = available_devices()
    target = available[0] if cfg.device_target == "auto" else cfg.device_target
    if target not in available:
        raise UserError(f"device_target {target} was asked for, but this machine's MindSpore "
                        f"can use only {', '.join(available)}: pass --device_target auto or CPU")
    mode = ms.GRAPH_MODE if cfg.mode == "graph" else ms.PYNATIVE_MODE
    # GRU and RNN cells unroll into nested calls that exceed graph mode's default depth of 1000.
    ms.set_context(mode=mode, max_call_depth=10000)
    if cfg.kernel_fusion and target == "CPU" and mode == ms.GRAPH_MODE:
        enable_kernel_fusion()
    # in data-parallel runs msrun and the rank-table launcher give each process its device
    device_id = int(os.environ.get("DEVICE_ID", cfg.device_id)) if cfg.distribute else cfg.device_id
    ms.set_device(target, device_id)
    return target
