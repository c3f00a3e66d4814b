"""Evaluate a checkpoint on the test split: SI-SNRi and SDRi per utterance and on average.

    python evaluate.py --ckpt_path outputs/demo/best.ckpt --data_dir data [--cal_sdr]
        [--eval_protocol whole|pieces|zoo] [--eval_segment 4]
    python evaluate.py --onnx dprnn.onnx --data_dir data [--eval_protocol zoo]

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
An exported ONNX model (`--onnx`, run in onnxruntime) takes inputs of the length it was exported
with: pieces of that length (or zoo segments of it), as the Ascend 310 path scores a MindIR.
Writes results_dir/per_utterance.csv (zoo: per_segment.csv), results_dir/summary.json and
results_dir/report.html, a listening report (report.py: the `report_items` worst and best utterances
to hear, their spectrograms, a histogram and a sortable table), and prints the averages the way the
model zoo does. `--report_only` makes report.html again from what results_dir holds.
`--compare_with DIR` (another evaluation of the same test set by the same protocol: another
checkpoint, or the 310 path's results) puts its scores beside these in the report: the average
change, a scatter of both SI-SNRi per utterance, and two more columns of the table.
"""
from pathlib import Path

from config import load_config

from tqdm import tqdm

from checkpoint import checkpoint_settings, trained_network
from data import mindrecord_file, read_index, read_split
from device import setup_device
from errors import ArgumentParser, run_main
from fileio import one_writer
from evaluation import (check_results_dir, evaluation_protocol, fixed_length_protocol, input_shapes, print_summary,
                        print_written, protocol_label, score_utterances, separate_utterances, summarize,
                        write_results)
from report import Extremes, write_evaluation_report
from results import Comparison
from separation import FixedLengthSeparator, Separator, load_onnx


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", default="", help="an exported ONNX model instead of --ckpt_path (onnxruntime)")
    parser.add_argument("--report_only", action="store_true",
                        help="only make results_dir/report.html again, from the results it holds")
    parser.add_argument("--compare_with", default="", metavar="RESULTS_DIR",
                        help="another evaluation's results_dir: its scores beside these in the report")
    # model settings come with the checkpoint; num_spks and sample_rate are an ONNX model's
    cfg = load_config(argv, parser, offers=("data_dir", "test_name", "num_workers", "sample_rate", "num_spks",
                                            "ckpt_path", "cal_sdr", "eval_protocol", "eval_segment", "results_dir",
                                            "report_items", "device"))
    check_results_dir(cfg.results_dir)
    comparison = Comparison(cfg.compare_with) if cfg.compare_with else None
    with one_writer(cfg.results_dir, "--results_dir"):
        if cfg.report_only:
            report_only(cfg.results_dir, comparison)
        else:
            evaluate(cfg, comparison)


def evaluate(cfg, comparison):
    settings = {}
    if cfg.onnx:
        model, segment_len = load_onnx(cfg.onnx)
        separate = FixedLengthSeparator(model, segment_len)
        protocol = fixed_length_protocol(cfg.eval_protocol)
        target = "onnxruntime"
    else:
        target = setup_device(**cfg.group("device"))
        net, cfg = trained_network(cfg)
        settings = checkpoint_settings(cfg)
        separate = Separator(net)
        protocol, segment_len = evaluation_protocol(cfg.eval_protocol, cfg.samples("eval_segment"), cfg.sample_rate)
    label = protocol_label(protocol, segment_len, cfg.sample_rate)
    if comparison:
        comparison.check(label, cfg.sample_rate)
    test_file = mindrecord_file(cfg.data_dir, cfg.test_name)
    lengths = read_index(test_file)[0]
    count = len(lengths)
    if target in ("Ascend", "GPU"):
        # Ascend's DynamicRNN is static-shape: kernels are built for every new input shape
        print(f"on {target}, kernels are built for each input shape: {input_shapes(protocol, lengths)} for "
              f"{label}; --eval_protocol pieces (or zoo) needs one", flush=True)
    utterances = tqdm(read_split(test_file, cfg.num_spks), total=count, desc="evaluating", unit="utt")
    extremes = Extremes(cfg.report_items)
    rows = score_utterances(separate_utterances(utterances, separate, protocol, segment_len),
                            cfg.cal_sdr, cfg.num_workers, cfg.sample_rate, extremes.offer)
    summary = summarize(rows, protocol, segment_len, cfg.sample_rate, count, model=cfg.onnx or cfg.ckpt_path,
                        model_args=settings, test_set=str(test_file))
    write_results(rows, summary, cfg.results_dir, extremes, comparison)
    print_summary(summary)
    print_written(summary, cfg.results_dir)


def report_only(results_dir, comparison):
    for note in write_evaluation_report(results_dir, comparison):
        print(f"note: {note}")
    print(f"listening report: {Path(results_dir) / 'report.html'} (open it in a browser)")


if __name__ == "__main__":
    run_main(main)
