"""The network as scripts use it: built from the config, loaded from a checkpoint, with its loss."""
import json
from pathlib import Path

import mindspore as ms
from mindspore import nn

from errors import UserError
from loss import PermutationInvariantSISNR
from model import DPRNN


class DPRNNWithLoss(nn.Cell):
    """(mixture [B, T], lens [B], sources [B, C, T]) -> PIT SI-SNR loss (scalar)."""

    def __init__(self, network, num_spks):
        super().__init__(auto_prefix=False)
        self.network = network
        self.loss = PermutationInvariantSISNR(num_spks)

    def construct(self, mixture, lens, sources):
        loss, _, _ = self.loss(self.network(mixture), sources, lens)
        return loss


def build_network(cfg):
    """DPRNN from the config's model group; a setting it cannot build with is a UserError."""
    try:
        return DPRNN(**cfg.group("model"))
    except ValueError as err:
        raise UserError(str(err)) from None


# the checkpoint entry recording what the weights were trained with (nanoGPT's model_args): the
# model settings and the sample rate, as JSON
MODEL_ARGS = "model_args"


def model_args(cfg):
    """The MODEL_ARGS entry train.py writes into every checkpoint."""
    return json.dumps({**cfg.group("model"), "sample_rate": cfg.sample_rate})


def network_from_checkpoint(cfg):
    """(network holding the weights of cfg.ckpt_path, cfg with the checkpoint's model settings).

    A checkpoint that records its settings needs no --config_path; a model setting given that
    disagrees with them is a UserError. An older checkpoint without them is built as cfg says.
    """
    entries = load_checkpoint(cfg.ckpt_path)
    if MODEL_ARGS in entries:
        saved = json.loads(entries[MODEL_ARGS])
        for key, value in saved.items():
            if key in cfg.explicit and getattr(cfg, key) != value:
                raise UserError(f"{cfg.ckpt_path} was trained with {key} {value}, not {getattr(cfg, key)}: "
                                f"leave {key} out (the checkpoint knows its settings)")
        cfg = cfg.updated(**saved)
    net = build_network(cfg)
    load_weights(net, cfg.ckpt_path, entries)
    return net, cfg


def load_checkpoint(path):
    """All entries of a checkpoint file, or a UserError naming the file."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        return ms.load_checkpoint(str(path))
    except (RuntimeError, ValueError, OSError) as err:
        raise UserError(f"{path}: not a readable MindSpore checkpoint ({str(err).splitlines()[0]})") from None


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
