"""The evaluation protocols: how a test utterance is cut for a network, put back together, scored
and summed up, and where the results are written. One module for evaluate.py and the 310 path
(files_310.py, postprocess.py), so each rule exists once.

Protocols: "whole" utterances; "pieces", consecutive fixed-length pieces (the last zero-padded)
put back together; "zoo", the model zoo's fixed-length segments scored one by one (evaluate.py
says more).
"""
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path

import numpy as np

import report
import results
from data import segment_starts
from errors import UserError
from fileio import atomic_paths, check_output_dir
from metrics import match_sources, score, sdr_and_improvement


def pieces(length, piece_len):
    """(offset, valid samples) of consecutive pieces covering `length`; the last may be short."""
    return [(offset, min(piece_len, length - offset)) for offset in range(0, length, piece_len)]


def layout(protocol, length, segment_len):
    """(offset, valid samples) of the pieces a fixed-length network is given of an utterance:
    "zoo", its whole segments (none if it is shorter than one); "pieces", consecutive pieces
    covering it, the last possibly short (zero-padded by pad_piece)."""
    if protocol == "zoo":
        return [(start, segment_len) for start in segment_starts(length, segment_len, segment_len)]
    return pieces(length, segment_len)


def pad_piece(mixture, offset, valid, piece_len):
    """The piece of a mixture [T] at offset, zero-padded to piece_len: the model's fixed input."""
    piece = np.zeros(piece_len, np.float32)
    piece[:valid] = mixture[offset:offset + valid]
    return piece


def reassemble(piece_estimates, cuts, sources):
    """Put separated pieces back into whole-utterance estimates [C, T].

    piece_estimates: [C, piece_len] per piece; cuts: (offset, valid) per piece (layout()). Each piece's
    speakers are matched to the references on that piece, since a model separating pieces
    independently need not keep the same speaker order from one to the next.
    """
    estimates = np.zeros_like(sources)
    for estimate, (offset, valid) in zip(piece_estimates, cuts):
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


def input_shapes(protocol, lengths):
    """How many input shapes a protocol feeds the network for utterances of these lengths: one per
    distinct length for whole utterances, one for fixed-length pieces or segments."""
    return len(set(int(n) for n in lengths)) if protocol == "whole" else 1


def separate_utterances(utterances, separate, protocol, segment_len):
    """(mixture_ID, mixture, sources) -> (key, mixture, sources, estimates matched to the sources)
    per scored item: the utterance (whole, pieces) or each zoo segment. key: {"mixture_ID"} and,
    for a segment, its "start" sample."""
    for mixture_id, mixture, sources in utterances:
        if protocol == "whole":
            yield {"mixture_ID": mixture_id}, mixture, sources, match_sources(separate(mixture), sources)
            continue
        cuts = layout(protocol, len(mixture), segment_len)
        outputs = [separate(pad_piece(mixture, offset, valid, segment_len)) for offset, valid in cuts]
        yield from scored_items(protocol, mixture_id, mixture, sources, outputs, cuts)


def scored_items(protocol, mixture_id, mixture, sources, outputs, cuts):
    """The items one utterance is scored as, from a fixed-length network's outputs [C, segment_len]
    for its cuts (layout()): zoo, one per segment; pieces, the utterance put back together."""
    if protocol == "zoo":
        for estimate, (start, valid) in zip(outputs, cuts):
            window = slice(start, start + valid)
            yield ({"mixture_ID": mixture_id, "start": start}, mixture[window], sources[:, window],
                   match_sources(estimate, sources[:, window]))
    else:
        yield {"mixture_ID": mixture_id}, mixture, sources, reassemble(outputs, cuts, sources)


def score_utterances(items, cal_sdr, num_workers, sample_rate, keep=None):
    """Rows of the items' keys, length in seconds, SI-SNR, SI-SNRi (and SDR, SDRi: mir_eval in
    num_workers processes). keep(row, mixture, sources, estimates), if given, sees every item (the
    report's report.Extremes keeps the ones to listen to)."""
    rows, sdr_jobs = [], []
    with ProcessPoolExecutor(max(1, num_workers)) if cal_sdr else nullcontext() as pool:
        for key, mixture, sources, estimates in items:
            rows.append({**key, "seconds": round(len(mixture) / sample_rate, 4),
                         **score(mixture, sources, estimates, key["mixture_ID"])})
            if keep:
                keep(rows[-1], mixture, sources, estimates)
            if cal_sdr:
                sdr_jobs.append(pool.submit(sdr_and_improvement, estimates, sources, mixture))
        for row, job in zip(rows, sdr_jobs):
            row["SDR"], row["SDRi"] = job.result()
    return rows


def protocol_label(protocol, segment_len, sample_rate):
    """How summary.json and the report name a protocol."""
    return {"whole": "whole utterances", "pieces": f"{segment_len / sample_rate:g}-s pieces",
            "zoo": f"model zoo: {segment_len / sample_rate:g}-s segments"}[protocol]


def summarize(rows, protocol, segment_len, sample_rate, utterances, **about):
    """Averages over the rows (utterances, or zoo segments) and what was scored: `utterances` is
    how many the test split holds, so those the zoo protocol dropped are counted; `about` (the
    model, its settings, the test set) is recorded as given."""
    if not rows:
        raise UserError(f"no utterance of the test split is {segment_len / sample_rate:g} s or longer: "
                        f"the zoo protocol dropped all {utterances}; lower --eval_segment")
    scored = len({row["mixture_ID"] for row in rows})
    summary = {"protocol": protocol_label(protocol, segment_len, sample_rate), "utterances": scored,
               "dropped_utterances": utterances - scored}
    if protocol == "zoo":
        summary["segments"] = len(rows)
    summary["si_snr"] = float(np.mean([r["SI-SNR"] for r in rows]))
    summary["si_snri"] = float(np.mean([r["SI-SNRi"] for r in rows]))
    if "SDR" in rows[0]:
        summary["sdr"] = float(np.mean([r["SDR"] for r in rows]))
        summary["sdri"] = float(np.mean([r["SDRi"] for r in rows]))
    return {**summary, "sample_rate": sample_rate, **about}


def check_results_dir(results_dir):
    """--results_dir can take the results and their report (before any work)."""
    check_output_dir(results_dir, "--results_dir")
    report.check_replaceable(Path(results_dir) / results.REPORT)
    report.check_audio_folder(results_dir)


def write_results(rows, summary, results_dir, extremes, comparison=None):
    """The results (results.py) and the listening report (report.html and the audio of the
    report.Extremes it plays; a results.Comparison's scores beside its own) in results_dir, replaced
    together, whole, or not at all. The report is drawn from the files as written."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    names = (results.table_name(summary), results.SUMMARY, results.REPORT, results.AUDIO_DIR)
    with atomic_paths(*(results_dir / name for name in names)) as (table, summary_file, page, audio):
        results.write_table(table, rows)
        results.write_summary(summary_file, summary)
        audio.mkdir()
        report.write_item_audio(audio, extremes, summary["sample_rate"])
        evaluation = results.read(table, summary_file, audio / results.ITEMS)
        page.write_text(report.evaluation_report(evaluation, audio, results_dir, datetime.now(), comparison)[0])


def print_summary(summary):
    if "segments" in summary:
        print(f"{summary['protocol']}: {summary['segments']} segments of {summary['utterances']} "
              f"utterances scored, {summary['dropped_utterances']} shorter utterances dropped")
    if "sdri" in summary:
        print(f"Average SDR improvement: {summary['sdri']:.2f}")
    print(f"Average SISNR improvement: {summary['si_snri']:.2f}")


def print_written(summary, results_dir):
    results_dir = Path(results_dir)
    print(f"detailed results: {results_dir / results.table_name(summary)}")
    print(f"listening report: {results_dir / results.REPORT} (open it in a browser)")
