"""Run configuration: hyper-parameters from default_config.yaml with overrides, and the device.

Every script calls `load_config()`: the defaults, then `--config_path other.yaml` (only the keys it
changes), then `--key value` on the command line, each typed and checked against the default.
"""
import argparse
import atexit
import math
import os
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

from errors import UserError, run_main  # noqa: E402,F401  (scripts import both from here)
from model import INITS, NORMS, RNNS  # noqa: E402

DEFAULT_CONFIG = Path(__file__).resolve().parent / "default_config.yaml"
DEVICES = ("Ascend", "GPU", "CPU")
CHOICES = {
    "rnn_type": tuple(RNNS),
    "norm": tuple(NORMS),
    "init": INITS,
    "device_target": ("auto",) + DEVICES,
    "mode": ("graph", "pynative"),
    "file_format": ("MINDIR", "AIR", "ONNX"),
    "mix_type": ("mix_clean", "mix_both"),
    "segment_mode": ("fixed", "random"),
    "lr_schedule": ("piecewise", "plateau", "exponential", "cosine", "constant"),
    "eval_protocol": ("whole", "pieces", "zoo"),
}


def _at_least(low):
    return lambda v: v >= low, f">= {low}"


def _between(low, high):
    return lambda v: low <= v <= high, f"{low} to {high}"


_POSITIVE = (lambda v: v > 0, "> 0")
_NAME = (lambda v: v.strip() != "" and "/" not in v, "a non-empty file name")
_PATH = (lambda v: v.strip() != "", "a non-empty path")
# What each setting means, as a test of its value and the allowed range named in the error.
# Keys absent here are booleans, choices (CHOICES) or paths checked where they are used.
RULES = {
    "data_dir": _PATH, "train_split": _PATH, "valid_split": _PATH, "test_split": _PATH,
    "train_name": _NAME, "valid_name": _NAME, "test_name": _NAME,
    "shard_num": _between(1, 1000),  # MindRecord's limit
    "num_workers": _between(1, 64), "sample_rate": _between(1000, 384000),
    "segment": _POSITIVE, "cv_maxlen": _POSITIVE,
    "in_channels": _at_least(1), "out_channels": _at_least(1), "hidden_channels": _at_least(1),
    "bn_channels": _at_least(1), "num_layers": _at_least(1),
    "kernel_size": (lambda v: v >= 2 and v % 2 == 0, "an even number >= 2"),  # the stride is half
    "K": _at_least(2), "num_spks": _between(1, 8),  # PIT tries every permutation: 8! already 40,320
    "dropout": (lambda v: 0 <= v < 1, "0 <= dropout < 1"),
    "output_dir": _PATH, "batch_size": _at_least(1), "epochs": _at_least(1), "max_steps": _at_least(0),
    "lr": _POSITIVE, "lr_patience": _at_least(1), "early_stop_patience": _at_least(0),
    "l2": _at_least(0), "clip_norm": _POSITIVE, "grad_accumulation": _at_least(1),
    "seed": _between(0, 2 ** 32 - 1), "save_checkpoint_steps": _at_least(0),
    "keep_checkpoint_max": _at_least(1), "eval_segment": _at_least(0), "results_dir": _PATH,
    "window": _POSITIVE, "export_length": _at_least(2), "device_id": _between(0, 4095),
}


def _check_value(key, value):
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{key} must be a finite number, got {value}")
    if key in RULES:
        valid, allowed = RULES[key]
        if not valid(value):
            raise UserError(f"{key} {value!r} is out of range: allowed {allowed}")


def _check_together(cfg):
    """Settings that are valid alone but not together; each error names the keys."""
    flat = cfg.as_flat()
    kernel, rate = flat["kernel_size"], flat["sample_rate"]
    if flat["out_channels"] != flat["in_channels"]:
        raise UserError(f"out_channels {flat['out_channels']} must equal in_channels "
                        f"{flat['in_channels']}: the masks multiply the encoder output")
    if flat["dynamic_mixing"] and flat["batch_size"] < flat["num_spks"]:
        raise UserError(f"dynamic_mixing takes each speaker from another segment of the batch: "
                        f"batch_size {flat['batch_size']} must be at least num_spks {flat['num_spks']}")
    if flat["batch_size"] % flat["grad_accumulation"]:
        raise UserError(f"batch_size {flat['batch_size']} is not a multiple of grad_accumulation "
                        f"{flat['grad_accumulation']}: the micro-batches must be equal")
    lengths = {"segment": flat["segment"] * rate, "eval_segment": flat["eval_segment"] * rate,
               "window": flat["window"] * rate, "export_length": flat["export_length"]}
    for key, samples in lengths.items():
        if samples < kernel and not (key == "eval_segment" and samples == 0):
            raise UserError(f"{key} {flat[key]} is {int(samples)} samples at {rate} Hz, shorter than "
                            f"kernel_size {kernel}: the model needs at least {kernel}")


class Config:
    """Flat attribute access (`cfg.lr`) over grouped settings (`cfg.group("model")`)."""

    def __init__(self, groups, extra=None, explicit=frozenset()):
        self._groups = groups
        self._flat = {key: value for group in groups.values() for key, value in group.items()}
        self._flat.update(extra or {})
        self.explicit = frozenset(explicit)  # settings given by --config_path or the command line

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
        return Config(groups, extra, self.explicit)

    def as_flat(self):
        return dict(self._flat)

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
    _check_value(key, value)
    return value


def _overlay(groups, path):
    """Apply another YAML file's settings onto the defaults and return their keys; unknown groups
    or keys are errors."""
    keys = set()
    for name, settings in _read_yaml(path).items():
        if name not in groups:
            raise UserError(f"{path}: unknown group {name!r} (groups: {', '.join(groups)})")
        for key, value in settings.items():
            if key not in groups[name]:
                raise UserError(f"{path}: unknown key {name}.{key}")
            groups[name][key] = _convert(key, value, groups[name][key])
            keys.add(key)
    return keys


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
    explicit = set()
    if args.config_path != str(DEFAULT_CONFIG):
        explicit |= _overlay(groups, args.config_path)
    extra = {}
    for key, value in vars(args).items():
        if key in owner:
            if value is not None:
                groups[owner[key]][key] = _convert(key, value, groups[owner[key]][key])
                explicit.add(key)
        else:
            extra[key] = value
    cfg = Config(groups, extra, explicit)
    _check_together(cfg)
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
