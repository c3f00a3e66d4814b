"""The network with what training scores it by, as the model zoo's network_define.py holds it: its
training loss (DPRNNWithLoss) and its validation score (ValidationNetwork or PieceValidation, and
mean_si_snr). Building it and its checkpoints are checkpoint.py's; exporting it, mindir.py's."""
from contextlib import nullcontext

import mindspore as ms
import numpy as np
from mindspore import nn

from device import eager_mode
from evaluation import separate_utterances
from loss import PermutationInvariantSISNR
from metrics import match_sources, si_snr


class DPRNNWithLoss(nn.Cell):
    """(mixture [B, T], lens [B], sources [B, C, T]) -> PIT SI-SNR loss (scalar)."""

    def __init__(self, network, num_spks):
        super().__init__(auto_prefix=False)
        self.network = network
        self.loss = PermutationInvariantSISNR(num_spks)

    def construct(self, mixture, lens, sources):
        loss, _, _ = self.loss(self.network(mixture), sources, lens)
        return loss


class ValidationNetwork(nn.Cell):
    """The network as validation runs it, mixture [B, T] -> estimates [B, C, T], and the PIT SI-SNR
    (dB) of each utterance's estimates (scores).

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


class PieceValidation:
    """Validation at one input shape, for devices that compile kernels for every new shape (Ascend's
    static-shape DynamicRNN, GPU): each utterance is cut into consecutive pieces of piece_len samples
    (the last zero-padded), the network separates them one at a time as [1, piece_len] in one graph,
    and the utterance is put back together (each piece's talkers matched to the references on that
    piece) and scored whole, the padding excluded: evaluation's "pieces" protocol, so the same figure
    as evaluate.py --eval_protocol pieces --eval_segment <segment>.
    """

    one_graph = True  # mean_si_snr: a static shape, compiled once

    def __init__(self, net, piece_len):
        self.net = net
        self.piece_len = piece_len

    def scores(self, mixture, sources, lens):
        """As ValidationNetwork.scores: mixture [B, T] (Tensor), sources [B, C, T], lens [B] -> SI-SNR [B]."""
        mixture = mixture.asnumpy()

        def separate(piece):
            return self.net(ms.Tensor(piece[None])).asnumpy()[0].astype(np.float64)
        utterances = ((b, mixture[b, :n], sources[b, :, :n].astype(np.float64)) for b, n in enumerate(lens))
        return np.array([si_snr(estimates, references).mean() for _, _, references, estimates
                         in separate_utterances(utterances, separate, "pieces", self.piece_len)])


def mean_si_snr(scores, dataset):
    """Mean over utterances of a ValidationNetwork's or PieceValidation's scores; dataset from
    data.eval_dataset."""
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
