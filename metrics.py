"""The scores of separated speech, in numpy: SI-SNR, SDR (BSS-Eval v3) and the matching of
estimated talkers to the references (permutation-invariant).

SI-SNR(s', s) = 10 log10(|a s|^2 / |s' - a s|^2), a = <s', s> / |s|^2, both signals zero-mean
(Le Roux et al., "SDR - half-baked or well done?", 2019). How test utterances are cut, scored
and summed up (the evaluation protocols) is evaluation.py's.
"""
import warnings
from itertools import permutations

import numpy as np

from errors import UserError

EPS = 1e-8  # the floor under every variance and energy: the numpy scores here, the model's norms, the loss


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


def best_permutation(estimates, references, similarity):
    """The order (a list of indices) of estimates [C, ...] under which similarity(estimates[order],
    references), one value per talker, sums highest: permutation-invariant matching."""
    return list(max(permutations(range(len(references))),
                    key=lambda order: similarity(estimates[list(order)], references).sum()))


def match_sources(estimates, sources):
    """estimates [C, T] permuted to the order of sources [C, T] that maximises the mean SI-SNR."""
    return estimates[best_permutation(estimates, sources, si_snr)]


def score(mixture, sources, estimates, mixture_id):
    """Per-utterance SI-SNR and SI-SNRi (dB) of estimates already matched to the sources."""
    if not np.isfinite(estimates).all():
        raise UserError(f"{mixture_id}: the separated estimates hold NaN or infinite values: the "
                        f"checkpoint or the inference results are damaged")
    snr = si_snr(estimates, sources)
    baseline = si_snr(np.broadcast_to(mixture, sources.shape), sources)
    return {"SI-SNR": float(snr.mean()), "SI-SNRi": float((snr - baseline).mean())}
