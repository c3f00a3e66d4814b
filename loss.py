"""The training loss: permutation-invariant SI-SNR in MindSpore (metrics.py scores in numpy).

SI-SNR(s', s) = 10 log10(|a s|^2 / |s' - a s|^2), a = <s', s> / |s|^2, both signals zero-mean
(Le Roux et al., "SDR - half-baked or well done?", 2019).
"""
from itertools import permutations

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from metrics import EPS


class PermutationInvariantSISNR(nn.Cell):
    """Negative SI-SNR of the estimates under their best assignment to the sources.

    Inputs: estimates [B, C, T], sources [B, C, T], lengths [B] (samples past a length are padding).
    Returns: loss (scalar, -mean best SI-SNR), si_snr [B] (mean over speakers of the best
    assignment), reordered [B, C, T] (estimates permuted to match the sources).
    """

    def __init__(self, num_spks):
        super().__init__()
        perms = list(permutations(range(num_spks)))
        # assignment[p, i, j] = 1 when permutation p gives estimate i to source j
        assignment = np.zeros((len(perms), num_spks, num_spks), np.float32)
        for p, perm in enumerate(perms):
            assignment[p, list(perm), range(num_spks)] = 1.0
        self.assignment = ms.Tensor(assignment)
        self.num_spks = num_spks

    def construct(self, estimates, sources, lengths):
        batch, num_spks, num_samples = sources.shape
        mask = (ops.arange(num_samples) < lengths.reshape(-1, 1, 1)).astype(ms.float32)  # [B, 1, T]
        count = lengths.reshape(-1, 1, 1).astype(ms.float32)
        estimates = _zero_mean(estimates * mask, count) * mask
        sources = _zero_mean(sources * mask, count) * mask
        pairwise = _pairwise_si_snr(estimates, sources)                        # [B, C(est), C(src)]
        scores = ops.matmul(pairwise.reshape(batch, -1),
                            self.assignment.reshape(-1, num_spks * num_spks).T)  # [B, P]
        best_score, best = ops.max(scores, axis=1)
        si_snr = best_score / num_spks
        reordered = ops.bmm(self.assignment[best].transpose(0, 2, 1), estimates)
        return -si_snr.mean(), si_snr, reordered


def _zero_mean(x, count):
    return x - x.sum(axis=-1, keepdims=True) / count


def _pairwise_si_snr(estimates, sources):
    """estimates [B, C, T], sources [B, C, T] (zero-mean) -> SI-SNR in dB [B, C, C], [b, est, src]."""
    est = estimates.expand_dims(2)                                      # [B, C, 1, T]
    src = sources.expand_dims(1)                                        # [B, 1, C, T]
    dot = (est * src).sum(axis=-1, keepdims=True)
    energy = (src ** 2).sum(axis=-1, keepdims=True) + EPS
    target = dot / energy * src
    noise = est - target
    ratio = (target ** 2).sum(axis=-1) / ((noise ** 2).sum(axis=-1) + EPS)
    return 10 * ops.log10(ratio + EPS)
