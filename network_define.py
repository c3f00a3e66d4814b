"""The network as scripts use it: built from the config, loaded from a checkpoint, exported, with
its training loss (DPRNNWithLoss) and its validation score (UtteranceScores)."""
import json
from contextlib import nullcontext
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

from device import eager_mode
from errors import UserError
from fileio import atomic_path, made_folders
from loss import PermutationInvariantSISNR
from metrics import match_sources, si_snr
from mindir import check_operators
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


class UtteranceScores(nn.Cell):
    """PIT SI-SNR (dB) of each utterance in a batch [B] of net's estimates.

    The network runs eagerly, or with one_graph=True as one graph for every length (MindSpore's
    dynamic shape): after a one-time compile the demo model separates utterances several times
    faster than eagerly, but such a graph keeps all its intermediates (gigabytes for the default
    model), so it suits small models only. The scores are computed on the host in float64: MindSpore's
    eager matrix products change their summation order after a few calls, which moved a validation
    score in its last digit from one epoch to the next and a resumed run's log off the original's.
    """

    def __init__(self, net, num_spks, one_graph):
        super().__init__(auto_prefix=False)  # the net's parameters keep their checkpoint names
        self.net = net
        self.num_spks = num_spks
        self.one_graph = one_graph
        if one_graph:
            self.set_inputs(ms.Tensor(shape=[None, None], dtype=ms.float32))

    def construct(self, mixture):
        return self.net(mixture)

    def scores(self, mixture, sources, lens):
        """mixture [B, T] (Tensor), sources [B, C, T] and lens [B] (numpy) -> SI-SNR [B] (numpy)."""
        estimates = self(mixture).asnumpy().astype(np.float64)
        sources = sources.astype(np.float64)
        return np.array([si_snr(match_sources(estimates[b, :, :n], sources[b, :, :n]), sources[b, :, :n]).mean()
                         for b, n in enumerate(lens)])


def mean_si_snr(scores, dataset):
    """Mean over utterances of UtteranceScores; dataset from data.eval_dataset."""
    was_training = scores.net.training
    scores.net.set_train(False)
    total, count = 0.0, 0
    with nullcontext() if scores.one_graph else eager_mode():
        for batch in dataset.create_dict_iterator(num_epochs=1):
            snr = scores.scores(batch["mixture"], batch["sources"].asnumpy(), batch["lens"].asnumpy())
            total += float(snr.sum())
            count += len(snr)
    scores.net.set_train(was_training)
    return total / max(count, 1)


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


def network_from_checkpoint(path, settings, explicit=frozenset(), target=None):
    """(network holding the weights of the checkpoint at path, the settings it was built with).

    settings: checkpoint_settings of the run's config; explicit: the keys the user gave; target: as
    for build_network. A
    checkpoint that records its settings is built with them, and a given setting that disagrees is
    a UserError; an older checkpoint without them is built with `settings`.
    """
    entries = load_checkpoint(path)
    if MODEL_ARGS in entries:
        # keys no longer in the config (out_channels) are dropped
        saved = {key: value for key, value in json.loads(entries[MODEL_ARGS]).items() if key in settings}
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
        raise UserError(f"{path}: not a readable MindSpore checkpoint ({str(err).splitlines()[0]})") from None


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


SUFFIX = {"MINDIR": ".mindir", "AIR": ".air", "ONNX": ".onnx"}


def check_export_target(file_format, export_target, host):
    """A UserError when file_format cannot be written for export_target (cpu, gpu, ascend) on a
    `host` device: ONNX is the CPU form (onnxruntime), AIR the Ascend form on an Ascend host."""
    if file_format == "AIR" and host != "Ascend":
        raise UserError(f"AIR export needs an Ascend device (this run is on {host}): use "
                        f"--file_format MINDIR --export_target ascend, which the Ascend 310 app loads")
    if file_format == "AIR" and export_target != "ascend":
        raise UserError("AIR is for Ascend only: pass --export_target ascend, or --file_format MINDIR")
    if file_format == "ONNX" and export_target != "cpu":
        raise UserError(f"ONNX export writes the cpu form (for onnxruntime), not {export_target}: drop "
                        f"--export_target, or export MINDIR for {export_target}")


def export_network(net, file_name, file_format, length, export_target):
    """Write net, built for export_target (cpu, gpu, ascend), with input [1, length] to file_name +
    the format's suffix; returns (that path, the operator check's summary line or None).

    A MindIR's operators are checked against its target (mindir.check_operators) before it takes
    its name: a file the target cannot run is never left behind. ONNX: the network runs in the form
    MindSpore's ONNX exporter takes (DPRNN.set_onnx_export, the same function); GRU and RNN cells it
    cannot export at all."""
    if file_format == "ONNX":
        rnn = next((type(cell).__name__ for _, cell in net.cells_and_names()
                    if isinstance(cell, (nn.GRU, nn.RNN))), None)
        if rnn:
            raise UserError(f"MindSpore {ms.__version__} cannot export {rnn} layers to ONNX (its exporter lacks "
                            f"make_list): export a model with rnn_type LSTM, or --file_format MINDIR")
    net.set_train(False)
    net.set_onnx_export(file_format == "ONNX")
    example = ms.Tensor(np.zeros((1, length), np.float32))
    path = Path(file_name + SUFFIX[file_format])
    summary = None
    try:
        with made_folders(path.parent), atomic_path(path) as tmp:
            # exported under a hidden name and renamed: an earlier export stays whole until then
            ms.export(net, example, file_name=str(tmp.with_suffix("")), file_format=file_format)
            if file_format == "MINDIR":
                try:
                    summary = check_operators(tmp, export_target, shown_as=path)
                except UserError as err:
                    raise UserError(f"{err}; nothing was written") from None
    except (RuntimeError, TypeError, ValueError) as err:
        if file_format != "ONNX":
            raise
        first_line = next((line for line in str(err).splitlines() if line.strip()), "unknown error")
        raise UserError(f"MindSpore {ms.__version__} cannot export this network to ONNX "
                        f"({first_line.strip()}): export MINDIR instead") from None
    finally:
        net.set_onnx_export(False)
    return path, summary
