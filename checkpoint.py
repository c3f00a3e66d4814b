"""Checkpoints: the network built from model settings, and checkpoint files written and read with
the settings they were trained with (their model_args entry, as nanoGPT's checkpoints carry theirs),
so that evaluate.py, export.py and separate.py need only the file."""
import json
from pathlib import Path

import mindspore as ms

from errors import UserError, reason_of
from mindir import SUFFIX
from model import DPRNN


def build_network(model, target=None):
    """DPRNN from model settings (the config's model group), its LSTMs built for the device `target`
    (layers.LSTM_FORMS; default: the one this run is on); a setting it cannot build with is a
    UserError."""
    try:
        return DPRNN(**model, lstm_for=target or ms.get_context("device_target"))
    except ValueError as err:
        raise UserError(str(err)) from None


# the checkpoint entry recording what the weights were trained with (nanoGPT's model_args): the
# model settings and the sample rate, as JSON
MODEL_ARGS = "model_args"


def checkpoint_settings(cfg):
    """What a checkpoint records of its model: the config's model group and the sample rate."""
    return {**cfg.group("model"), "sample_rate": cfg.sample_rate}


def model_args(cfg):
    """The MODEL_ARGS entry train.py writes into every checkpoint."""
    return json.dumps(checkpoint_settings(cfg))


def trained_network(cfg, target=None):
    """(the network of cfg.ckpt_path with its weights, cfg with the checkpoint's own model settings):
    where every script that runs a trained model starts."""
    net, settings = network_from_checkpoint(cfg.ckpt_path, checkpoint_settings(cfg), cfg.explicit, target)
    return net, cfg.updated(**settings)


def network_from_checkpoint(path, settings, explicit=frozenset(), target=None):
    """(network holding the weights of the checkpoint at path, the settings it was built with).

    settings: checkpoint_settings of the run's config; explicit: the keys the user gave; target: as
    for build_network. A
    checkpoint that records its settings is built with them, and a given setting that disagrees is
    a UserError; an older checkpoint without them is built with `settings`.
    """
    entries = load_checkpoint(path)
    if MODEL_ARGS in entries:
        saved = json.loads(entries[MODEL_ARGS])
        if unknown := sorted(set(saved) - set(settings)):
            raise UserError(f"{path}: its model_args hold settings this version has not: {', '.join(unknown)}")
        for key, value in saved.items():
            if key in explicit and settings[key] != value:
                raise UserError(f"{path} was trained with {key} {value}, not {settings[key]}: "
                                f"leave {key} out (the checkpoint knows its settings)")
        settings = {**settings, **saved}
    net = build_network({key: value for key, value in settings.items() if key != "sample_rate"}, target)
    load_weights(net, path, entries)
    return net, settings


def load_checkpoint(path):
    """All entries of a checkpoint file, or a UserError naming the file (and the way out where the
    path is a run's folder or an exported model)."""
    path = Path(path)
    if path.is_dir():
        best = path / "best.ckpt"
        raise UserError(f"{path}: a folder, not a checkpoint file: give one of its checkpoints"
                        + (f", e.g. {best}" if best.is_file() else ""))
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    if path.suffix.lower() in SUFFIX.values():
        raise UserError(f"{path}: an exported model, not a checkpoint: give the .ckpt it was exported from "
                        f"(separate.py runs it with --mindir or --onnx, evaluate.py with --onnx)")
    try:
        return ms.load_checkpoint(str(path))
    except (RuntimeError, ValueError, OSError) as err:
        raise UserError(f"{path}: not a readable MindSpore checkpoint ({reason_of(err)})") from None


def save_checkpoint(cell, path, extra):
    """Write `cell`'s parameters and the `extra` entries (model_args, training state) to the file at
    `path` as it is given: a hidden name of fileio.atomic_path's. MindSpore writes <name>.tmp first
    and leaves it behind when writing fails (a full disk): removed here, so a failure leaves nothing."""
    try:
        ms.save_checkpoint(cell, str(path), append_dict=extra)
    finally:
        Path(path).with_suffix(".tmp").unlink(missing_ok=True)


def load_weights(net, path, entries=None):
    """Put a checkpoint's weights into `net`, after checking every parameter is there with its shape.

    Entries outside the network (optimizer moments, training state) are ignored; an extra network
    weight (say, a seventh dual-path block) means the checkpoint is of another model.
    """
    entries = load_checkpoint(path) if entries is None else entries
    names = {p.name for p in net.get_parameters()}
    top_level = {name.split(".")[0] for name in names}
    extra = sorted(k for k in entries if k.split(".")[0] in top_level and k not in names)
    if extra:
        raise UserError(f"{path} has {extra[0]}, which the configured model lacks: it was trained with "
                        f"other model settings (its config.yaml, via --config_path)")
    for param in net.get_parameters():
        if param.name not in entries:
            raise UserError(f"{path} has no {param.name}: it is not a checkpoint of this model "
                            f"(rnn_type, num_layers, bidirectional?)")
        saved = tuple(entries[param.name].shape)
        if saved != tuple(param.shape):
            raise UserError(f"{path} does not fit the configured model: {param.name} is {saved} there "
                            f"but {tuple(param.shape)} here: pass the model settings it was trained with "
                            f"(its config.yaml, via --config_path)")
    ms.load_param_into_net(net, {p.name: entries[p.name] for p in net.get_parameters()}, strict_load=True)
