"""Run configuration: hyper-parameters from default_config.yaml with overrides.

Every script calls `load_config()`: the defaults, then `--config_path other.yaml` (only the keys it
changes), then `--key value` on the command line, each typed and checked against the default.
"""
import argparse
import inspect
import math
import re
from pathlib import Path

import yaml

import device  # first: it sets MindSpore's environment before model.py loads MindSpore
from errors import ArgumentParser, UserError
from model import INITS, NORMS, RNNS, check_model_args

DEFAULT_CONFIG = Path(__file__).resolve().parent / "default_config.yaml"
CHOICES = {
    "rnn_type": tuple(RNNS),
    "norm": tuple(NORMS),
    "init": INITS,
    "device_target": ("auto",) + device.DEVICES,
    "mode": ("graph", "pynative"),
    "file_format": ("MINDIR", "AIR", "ONNX"),
    "export_target": ("auto", "cpu", "gpu", "ascend"),
    "mix_type": ("mix_clean", "mix_both"),
    "segment_mode": ("fixed", "random"),
    "lr_schedule": ("piecewise", "plateau", "exponential", "cosine", "constant"),
    "eval_protocol": ("whole", "pieces", "zoo"),
    "valid_protocol": ("auto", "whole", "pieces"),
}


def _at_least(low):
    return lambda v: v >= low, f">= {low}"


def _between(low, high):
    return lambda v: low <= v <= high, f"{low} to {high}"


_POSITIVE = (lambda v: v > 0, "> 0")
# every length setting is in seconds; Config.samples converts
SECONDS = ("segment", "cv_maxlen", "eval_segment", "window", "export_length")
# a config file's key naming the config file (relative to it) whose settings it changes
EXTENDS = "extends"
_NAME = (lambda v: v.strip() != "" and "/" not in v, "a non-empty file name")
_PATH = (lambda v: v.strip() != "", "a non-empty path")
# the model settings model.check_model_args judges (the one check of them, for configs and checkpoints)
CHECKED_BY_MODEL = tuple(inspect.signature(check_model_args).parameters)
# What each setting means, as a test of its value and the allowed range named in the error.
# Keys absent here are booleans, choices (CHOICES) or paths checked where they are used.
RULES = {
    "data_dir": _PATH, "train_split": _PATH, "valid_split": _PATH, "test_split": _PATH,
    "train_name": _NAME, "valid_name": _NAME, "test_name": _NAME,
    "shard_num": _between(1, 1000),  # MindRecord's limit
    "num_workers": _between(1, 64), "sample_rate": _between(1000, 384000),
    "segment": _POSITIVE, "cv_maxlen": _POSITIVE,
    "in_channels": _at_least(1), "hidden_channels": _at_least(1),
    "bn_channels": _at_least(1), "num_layers": _at_least(1),
    "dropout": (lambda v: 0 <= v < 1, "0 <= dropout < 1"),
    "output_dir": _PATH, "batch_size": _at_least(1), "epochs": _at_least(1), "max_steps": _at_least(0),
    "lr": _POSITIVE, "lr_patience": _at_least(1), "early_stop_patience": _at_least(0),
    "l2": _at_least(0), "clip_norm": _POSITIVE, "grad_accumulation": _at_least(1),
    "seed": _between(0, 2 ** 32 - 1), "save_checkpoint_steps": _at_least(0),
    "keep_checkpoint_max": _at_least(1), "eval_segment": _at_least(0), "results_dir": _PATH,
    "report_items": _at_least(0),
    "window": (lambda v: v >= 0, ">= 0 (0: the whole file in one pass)"),
    "export_length": (lambda v: 0 < v <= 600, "seconds, 0 < export_length <= 600 (no longer samples)"),
    "device_id": _between(0, 4095),
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
    try:
        check_model_args(**{key: flat[key] for key in CHECKED_BY_MODEL})
    except ValueError as err:
        raise UserError(str(err)) from None
    if flat["dynamic_mixing"] and flat["batch_size"] < flat["num_spks"]:
        raise UserError(f"dynamic_mixing takes each speaker from another segment of the batch: "
                        f"batch_size {flat['batch_size']} must be at least num_spks {flat['num_spks']}")
    if flat["batch_size"] % flat["grad_accumulation"]:
        raise UserError(f"batch_size {flat['batch_size']} is not a multiple of grad_accumulation "
                        f"{flat['grad_accumulation']}: the micro-batches must be equal")
    for key in SECONDS:
        samples = cfg.samples(key)
        if samples < kernel and not (key in ("eval_segment", "window") and samples == 0):
            raise UserError(f"{key} {flat[key]:g} s is {samples} samples at {rate} Hz, shorter than the "
                            f"model's kernel_size {kernel}: the smallest valid {key} is {kernel / rate:g} s")


def check_length(option, cfg, *values, unit=1.0, whole_frame=True):
    """A script's own length option (not a config setting: bench.py --seconds, separate.py --block_ms),
    checked as the config's lengths are: each value (in seconds times `unit`, as given) finite and > 0
    and, where the network sees it as one input (whole_frame), at least the model's kernel_size. A
    UserError naming the option otherwise."""
    kernel, rate = cfg.kernel_size, cfg.sample_rate
    for value in values:
        if not math.isfinite(value) or value <= 0:
            raise UserError(f"{option} must be a finite number > 0, got {value:g}")
        samples = cfg.samples_of(value * unit)
        if whole_frame and samples < kernel:
            raise UserError(f"{option} {value:g} is {samples} samples at {rate} Hz, shorter than the model's "
                            f"kernel_size {kernel}: the smallest valid {option} is {kernel / rate / unit:g}")


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
        updated = Config(groups, extra, self.explicit)
        # a checkpoint's own model settings (kernel_size, ...) can make a length given before too short
        _check_together(updated)
        return updated

    def samples(self, key):
        """A length setting (seconds, SECONDS) in samples at the sample rate: the one conversion."""
        return self.samples_of(self._flat[key])

    def samples_of(self, seconds):
        return int(round(seconds * self._flat["sample_rate"]))

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
    if not isinstance(data, dict) or not all(isinstance(g, dict) for k, g in data.items() if k != EXTENDS) \
            or not isinstance(data.get(EXTENDS, ""), str):
        raise UserError(f"{path} must map group names (data, model, ...) to key: value settings "
                        f"(and may name the file it changes as '{EXTENDS}: other.yaml')")
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
    """Apply another YAML file's settings onto the defaults (after those of the file it extends,
    if any) and return their keys; unknown groups or keys are errors."""
    data = _read_yaml(path)
    keys = set()
    if EXTENDS in data:
        keys = _overlay(groups, Path(path).parent / data.pop(EXTENDS))
    for name, settings in data.items():
        if name not in groups:
            raise UserError(f"{path}: unknown group {name!r} (groups: {', '.join(groups)})")
        for key, value in settings.items():
            if key not in groups[name]:
                raise UserError(f"{path}: unknown key {name}.{key}")
            groups[name][key] = _convert(key, value, groups[name][key])
            keys.add(key)
    return keys


def _comments(path):
    """{key: its comment, continuation lines joined} in a YAML file written as default_config.yaml is."""
    found, key = {}, None
    for line in Path(path).read_text().splitlines():
        if match := re.fullmatch(r"  (\w+): [^#]*?(?:#\s*(.*))?", line):
            key = match[1]
            if match[2]:
                found[key] = match[2]
        elif key in found and (match := re.fullmatch(r"\s+#\s*(.*)", line)):
            found[key] += " " + match[1]
        else:
            key = None
    return found


def offered_keys(groups, offers):
    """The settings named by `offers` (group names, or keys of groups), in the YAML's order; all of
    them when offers is None."""
    if offers is None:
        return [key for settings in groups.values() for key in settings]
    unknown = [name for name in offers if name not in groups and all(name not in g for g in groups.values())]
    if unknown:
        raise ValueError(f"no such config group or key: {', '.join(unknown)}")
    return [key for name, settings in groups.items() for key in settings if name in offers or key in offers]


def load_config(argv=None, parser=None, verbose=True, offers=None):
    """Resolve the configuration of one run.

    parser: the script's own argparse parser for arguments that are not hyper-parameters
    (input files, checkpoint paths); those come back as attributes of the Config too.
    offers: the settings the script reads (group names, or keys), shown in --help with their meaning;
    None: every setting. Any setting may still be given, as a config file (--config_path) may hold any
    key: one config serves every script, as the model zoo's does.
    """
    parser = parser or ArgumentParser()
    parser.allow_abbrev = False
    parser.add_argument("--config_path", default=str(DEFAULT_CONFIG),
                        help="YAML file whose settings replace the defaults (any key of default_config.yaml)")
    groups = _read_yaml(DEFAULT_CONFIG)
    owner = {key: name for name, settings in groups.items() for key in settings}
    meaning = _comments(DEFAULT_CONFIG)
    sections = {}
    offered = offered_keys(groups, offers)
    for key in offered + [key for key in owner if key not in offered]:
        name, default = owner[key], groups[owner[key]][key]
        # a bare boolean flag (`--skip_bad`) means true
        flag = dict(nargs="?", const="true") if isinstance(default, bool) else {}
        if key not in offered:  # taken, as from a shared config file, but not shown: this script does not read it
            parser.add_argument(f"--{key}", default=None, help=argparse.SUPPRESS, **flag)
            continue
        if name not in sections:
            sections[name] = parser.add_argument_group(f"{name} settings (default_config.yaml)")
        metavar = "{" + ",".join(CHOICES[key]) + "}" if key in CHOICES else type(default).__name__.upper()
        sections[name].add_argument(f"--{key}", default=None, metavar=metavar,
                                    help=f"{meaning.get(key, key)} (default: {default})".replace("%", "%%"),
                                    **flag)
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
