"""Evaluate a checkpoint on the test split: SI-SNRi and SDRi per utterance and on average.

    python evaluate.py --ckpt_path outputs/demo/best.ckpt --data_dir data [--cal_sdr]
        [--eval_protocol whole|pieces|zoo] [--eval_segment 4]

Protocols (`--eval_protocol`):
- whole (default): each utterance separated whole; the DPRNN paper's, Asteroid's, SpeechBrain's
  and LibriMix's.
- pieces: each utterance cut into consecutive `eval_segment`-second pieces (the last zero-padded),
  separated one by one, matched to the references piece by piece and put back together; scored per
  utterance. `--eval_segment S` alone selects it.
- zoo: the model zoo's own scoring, which gave its 12.77 dB: every utterance of at least
  `eval_segment` seconds (4 s unless set) cut into non-overlapping segments of that length, plus
  its last `eval_segment` seconds when the length is not a multiple (overlapping the previous
  segment); shorter utterances dropped; each segment separated alone and scored alone; averages
  over segments.
Writes results_dir/per_utterance.csv (zoo: per_segment.csv) and results_dir/summary.json and
prints the averages the way the model zoo does.
"""
import argparse
import csv
import json
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from itertools import permutations
from pathlib import Path

from config import UserError, load_config, run_main, setup_device

import mindspore as ms
import numpy as np
from mindspore import nn
from tqdm import tqdm

from data import eval_dataset, mindrecord_file, read_index
from fileio import atomic_path, check_output_dir, write_text
from loss import sdr_and_improvement, si_snr
from network_define import network_from_checkpoint


@contextmanager
def eager_mode():
    """Run in PyNative mode inside the block.

    Whole utterances all have different lengths: graph mode would compile once per length, and its
    dynamic-shape graph keeps every intermediate (12 GB for 5 s of audio with the default model).
    """
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        yield
    finally:
        ms.set_context(mode=previous)


class UtteranceScores(nn.Cell):
    """PIT SI-SNR (dB) of each utterance in a batch [B] of net's estimates.

    The network runs eagerly, or with one_graph=True as one graph for every length (MindSpore's
    dynamic shape): after a one-time compile (~4 s) the demo model separates a 4-s utterance ~3x
    faster than eagerly, but such a graph keeps all its intermediates (the default model: 9.7 GB at
    4 s), so it suits small models only. The scores are computed on the host in float64: MindSpore's
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


class Separator:
    """A network that separates numpy mixtures: [T] -> [C, T], any length.

    A length met before (the windows of a long recording, fixed evaluation pieces, a benchmark)
    runs as a compiled graph: compiling costs about one eager run, and each compiled run is then
    ~2x faster on CPU. A length met for the first time runs eagerly, so utterances of all different
    lengths never wait for a compile. (With `--mode pynative` everything runs eagerly.)
    """

    def __init__(self, net):
        self.net = net
        self.net.set_train(False)
        self.seen_lengths = set()

    def __call__(self, mixture):
        length = len(mixture)
        # the encoder needs one whole frame: shorter inputs are zero-padded to it
        padded = np.zeros(max(length, self.net.kernel_size), np.float32)
        padded[:length] = mixture
        batch = ms.Tensor(padded[None])
        if len(padded) in self.seen_lengths:
            return self.net(batch).asnumpy()[0, :, :length]
        self.seen_lengths.add(len(padded))
        with eager_mode():
            return self.net(batch).asnumpy()[0, :, :length]


ZOO_SEGMENT_SECONDS = 4.0


def evaluation_protocol(cfg):
    """(protocol, segment length in samples; 0 for whole utterances) of a configuration."""
    protocol = "pieces" if cfg.eval_protocol == "whole" and cfg.eval_segment else cfg.eval_protocol
    if protocol == "whole":
        return protocol, 0
    return protocol, int(round((cfg.eval_segment or ZOO_SEGMENT_SECONDS) * cfg.sample_rate))


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


def read_test_split(cfg):
    """(mixture_ID, mixture [T], sources [C, T]) of the test split, in file order."""
    dataset = eval_dataset(mindrecord_file(cfg.data_dir, cfg.test_name), cfg.num_spks)
    for batch in dataset.create_dict_iterator(num_epochs=1, output_numpy=True):
        length = int(batch["lens"][0])
        yield str(batch["mixture_ID"][0]), batch["mixture"][0, :length], batch["sources"][0, :, :length]


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
    """per_utterance.csv (zoo: per_segment.csv) and summary.json in results_dir, each replaced
    whole or not at all."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(results_dir / results_file(summary)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_text(results_dir / "summary.json", json.dumps(summary, indent=1) + "\n")


def print_summary(summary):
    if "segments" in summary:
        print(f"{summary['protocol']}: {summary['segments']} segments of {summary['utterances']} "
              f"utterances scored, {summary['dropped_utterances']} shorter utterances dropped")
    if "sdri" in summary:
        print(f"Average SDR improvement: {summary['sdri']:.2f}")
    print(f"Average SISNR improvement: {summary['si_snri']:.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cfg = load_config(argv, parser)
    check_output_dir(cfg.results_dir, "--results_dir")
    setup_device(cfg)
    net, cfg = network_from_checkpoint(cfg)
    count = len(read_index(mindrecord_file(cfg.data_dir, cfg.test_name))[0])
    utterances = tqdm(read_test_split(cfg), total=count, desc="evaluating", unit="utt")
    protocol, segment_len = evaluation_protocol(cfg)
    rows = score_utterances(separate_utterances(utterances, Separator(net), protocol, segment_len),
                            cfg.cal_sdr, cfg.num_workers)
    summary = summarize(rows, protocol, segment_len, cfg.sample_rate, count)
    write_results(rows, summary, cfg.results_dir)
    print_summary(summary)
    print(f"detailed results: {Path(cfg.results_dir) / results_file(summary)}")


if __name__ == "__main__":
    run_main(main)
