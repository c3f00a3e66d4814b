"""Scoring separated speech: SI-SNR, SDR (BSS-Eval) and the evaluation protocols, in numpy.

SI-SNR(s', s) = 10 log10(|a s|^2 / |s' - a s|^2), a = <s', s> / |s|^2, both signals zero-mean
(Le Roux et al., "SDR - half-baked or well done?", 2019). Protocols: "whole" utterances, "pieces"
of fixed length put back together, and the model zoo's "zoo" segments (evaluate.py says more).
evaluate.py scores a network's output with these functions, postprocess.py the 310 path's.
"""
import csv
import json
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from itertools import permutations
from pathlib import Path

import numpy as np

from errors import UserError
from fileio import atomic_paths

EPS = 1e-8


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


def match_sources(estimates, sources):
    """estimates [C, T] permuted to the order of sources [C, T] that maximises the mean SI-SNR."""
    best = max(permutations(range(len(sources))),
               key=lambda perm: si_snr(estimates[list(perm)], sources).mean())
    return estimates[list(best)]


def pieces(length, piece_len):
    """(offset, valid samples) of consecutive pieces covering `length`; the last may be short."""
    return [(offset, min(piece_len, length - offset)) for offset in range(0, length, piece_len)]


def zoo_segments(length, segment_len):
    """Starts of the model zoo's scoring segments in an utterance of `length` samples: consecutive
    whole segments, then the last segment_len samples if some are left over; none if it is shorter."""
    if length < segment_len:
        return []
    starts = list(range(0, length - segment_len + 1, segment_len))
    if length % segment_len:
        starts.append(length - segment_len)
    return starts


def pad_piece(mixture, offset, valid, piece_len):
    """The piece of a mixture [T] at offset, zero-padded to piece_len: the model's fixed input."""
    piece = np.zeros(piece_len, np.float32)
    piece[:valid] = mixture[offset:offset + valid]
    return piece


def reassemble(piece_estimates, layout, sources):
    """Put separated pieces back into whole-utterance estimates [C, T].

    piece_estimates: [C, piece_len] per piece; layout: (offset, valid) per piece. Each piece's
    speakers are matched to the references on that piece, since a model separating pieces
    independently need not keep the same speaker order from one to the next.
    """
    estimates = np.zeros_like(sources)
    for estimate, (offset, valid) in zip(piece_estimates, layout):
        window = slice(offset, offset + valid)
        estimates[:, window] = match_sources(estimate[:, :valid], sources[:, window])
    return estimates


ZOO_SEGMENT_SECONDS = 4.0


def evaluation_protocol(eval_protocol, segment_len, sample_rate):
    """(protocol, segment length in samples; 0 for whole utterances) of the eval settings:
    segment_len is eval_segment in samples, 0 for the protocol's default."""
    protocol = "pieces" if eval_protocol == "whole" and segment_len else eval_protocol
    if protocol == "whole":
        return protocol, 0
    return protocol, segment_len or int(round(ZOO_SEGMENT_SECONDS * sample_rate))


def fixed_length_protocol(eval_protocol):
    """The protocol for a model of fixed input length (MindIR, ONNX): the zoo's segments, or else
    pieces of that length (it cannot take whole utterances)."""
    return "zoo" if eval_protocol == "zoo" else "pieces"


def score(mixture, sources, estimates, mixture_id):
    """Per-utterance SI-SNR and SI-SNRi (dB) of estimates already matched to the sources."""
    if not np.isfinite(estimates).all():
        raise UserError(f"{mixture_id}: the separated estimates hold NaN or infinite values: the "
                        f"checkpoint or the inference results are damaged")
    snr = si_snr(estimates, sources)
    baseline = si_snr(np.broadcast_to(mixture, sources.shape), sources)
    return {"SI-SNR": float(snr.mean()), "SI-SNRi": float((snr - baseline).mean())}


def zoo_item(mixture_id, start, mixture, sources, estimates):
    """One zoo segment as separate_utterances yields it; estimates [C, T] in the network's order."""
    return {"mixture_ID": mixture_id, "start": start}, mixture, sources, match_sources(estimates, sources)


def separate_utterances(utterances, separate, protocol, segment_len):
    """(mixture_ID, mixture, sources) -> (key, mixture, sources, estimates matched to the sources)
    per scored item: the utterance (whole, pieces) or each zoo segment. key: {"mixture_ID"} and,
    for a segment, its "start" sample."""
    for mixture_id, mixture, sources in utterances:
        if protocol == "zoo":
            for start in zoo_segments(len(mixture), segment_len):
                window = slice(start, start + segment_len)
                yield zoo_item(mixture_id, start, mixture[window], sources[:, window], separate(mixture[window]))
            continue
        if protocol == "pieces":
            layout = pieces(len(mixture), segment_len)
            outputs = [separate(pad_piece(mixture, offset, valid, segment_len)) for offset, valid in layout]
            estimates = reassemble(outputs, layout, sources)
        else:
            estimates = match_sources(separate(mixture), sources)
        yield {"mixture_ID": mixture_id}, mixture, sources, estimates


def score_utterances(items, cal_sdr, num_workers):
    """Rows of the items' keys, SI-SNR, SI-SNRi (and SDR, SDRi: mir_eval in num_workers processes)."""
    rows, sdr_jobs = [], []
    with ProcessPoolExecutor(max(1, num_workers)) if cal_sdr else nullcontext() as pool:
        for key, mixture, sources, estimates in items:
            rows.append({**key, **score(mixture, sources, estimates, key["mixture_ID"])})
            if cal_sdr:
                sdr_jobs.append(pool.submit(sdr_and_improvement, estimates, sources, mixture))
        for row, job in zip(rows, sdr_jobs):
            row["SDR"], row["SDRi"] = job.result()
    return rows


def summarize(rows, protocol, segment_len, sample_rate, utterances):
    """Averages over the rows (utterances, or zoo segments) and what was scored: `utterances` is
    how many the test split holds, so those the zoo protocol dropped are counted."""
    if not rows:
        raise UserError(f"no utterance of the test split is {segment_len / sample_rate:g} s or longer: "
                        f"the zoo protocol dropped all {utterances}; lower --eval_segment")
    scored = len({row["mixture_ID"] for row in rows})
    label = {"whole": "whole utterances", "pieces": f"{segment_len / sample_rate:g}-s pieces",
             "zoo": f"model zoo: {segment_len / sample_rate:g}-s segments"}[protocol]
    summary = {"protocol": label, "utterances": scored, "dropped_utterances": utterances - scored}
    if protocol == "zoo":
        summary["segments"] = len(rows)
    summary["si_snr"] = float(np.mean([r["SI-SNR"] for r in rows]))
    summary["si_snri"] = float(np.mean([r["SI-SNRi"] for r in rows]))
    if "SDR" in rows[0]:
        summary["sdr"] = float(np.mean([r["SDR"] for r in rows]))
        summary["sdri"] = float(np.mean([r["SDRi"] for r in rows]))
    return summary


def results_file(summary):
    return "per_segment.csv" if "segments" in summary else "per_utterance.csv"


def write_results(rows, summary, results_dir):
    """per_utterance.csv (zoo: per_segment.csv) and summary.json in results_dir, replaced together,
    whole, or not at all."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    with atomic_paths(results_dir / results_file(summary), results_dir / "summary.json") as (table, summary_tmp):
        with open(table, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        summary_tmp.write_text(json.dumps(summary, indent=1) + "\n")


def print_summary(summary):
    if "segments" in summary:
        print(f"{summary['protocol']}: {summary['segments']} segments of {summary['utterances']} "
              f"utterances scored, {summary['dropped_utterances']} shorter utterances dropped")
    if "sdri" in summary:
        print(f"Average SDR improvement: {summary['sdri']:.2f}")
    print(f"Average SISNR improvement: {summary['si_snri']:.2f}")
