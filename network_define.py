"""The network with its loss: what a training step differentiates."""
from mindspore import nn

from loss import PermutationInvariantSISNR


class DPRNNWithLoss(nn.Cell):
    """(mixture [B, T], lens [B], sources [B, C, T]) -> PIT SI-SNR loss (scalar)."""

    def __init__(self, network, num_spks):
        super().__init__(auto_prefix=False)
        self.network = network
        self.loss = PermutationInvariantSISNR(num_spks)

    def construct(self, mixture, lens, sources):
        loss, _, _ = self.loss(self.network(mixture), sources, lens)
        return loss
