"""SI-SNR: the training loss (MindSpore, permutation-invariant) and the evaluation metrics (numpy).

SI-SNR(s', s) = 10 log10(|a s|^2 / |s' - a s|^2), a = <s', s> / |s|^2, both signals zero-mean
(Le Roux et al., "SDR - half-baked or well done?", 2019).
"""
import warnings
from itertools import permutations

import mindspore as ms
import numpy as np
from mindspore import nn, ops

EPS = 1e-8


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


def si_snr(estimate, reference):
    """SI-SNR in dB of numpy signals [..., T]; returns [...]."""
    estimate = estimate - estimate.mean(axis=-1, keepdims=True)
    reference = reference - reference.mean(axis=-1, keepdims=True)
    scale = (estimate * reference).sum(-1, keepdims=True) / ((reference ** 2).sum(-1, keepdims=True) + EPS)
    target = scale * reference
    noise = estimate - target
    return 10 * np.log10((target ** 2).sum(-1) / ((noise ** 2).sum(-1) + EPS) + EPS)


def sdr_and_improvement(estimates, sources, mixture):
    """Mean SDR and SDRi in dB, BSS-Eval v3 (mir_eval, best permutation): [C, T], [C, T], [T]."""
    from mir_eval.separation import bss_eval_sources  # slow import; only evaluation needs it
    with warnings.catch_warnings():
        # mir_eval 0.8 marks it deprecated, yet it is the BSS-Eval v3 SDR every paper reports;
        # requirements.txt pins mir_eval so it stays.
        warnings.simplefilter("ignore", FutureWarning)
        sdr, _, _, _ = bss_eval_sources(sources, estimates)
        sdr_mixture, _, _, _ = bss_eval_sources(sources, np.repeat(mixture[None], len(sources), 0))
    return float(np.mean(sdr)), float(np.mean(sdr - sdr_mixture))
