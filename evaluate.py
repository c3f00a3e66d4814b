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
Writes results_dir/per_utterance.csv (zoo: per_segment.csv) and results_dir/summary.json and
prints the averages the way the model zoo does.
"""
from pathlib import Path

from config import load_config

from tqdm import tqdm

from checkpoint import checkpoint_settings, network_from_checkpoint
from data import mindrecord_file, read_index, read_split
from device import setup_device
from errors import ArgumentParser, run_main
from evaluation import (evaluation_protocol, fixed_length_protocol, print_summary, results_file, score_utterances,
                        separate_utterances, summarize, write_results)
from fileio import check_output_dir
from separation import FixedLengthSeparator, Separator, load_onnx


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", default="", help="an exported ONNX model instead of --ckpt_path (onnxruntime)")
    cfg = load_config(argv, parser)
    check_output_dir(cfg.results_dir, "--results_dir")
    if cfg.onnx:
        model, segment_len = load_onnx(cfg.onnx)
        separate = FixedLengthSeparator(model, segment_len)
        protocol = fixed_length_protocol(cfg.eval_protocol)
    else:
        setup_device(**cfg.group("device"))
        net, settings = network_from_checkpoint(cfg.ckpt_path, checkpoint_settings(cfg), cfg.explicit)
        cfg = cfg.updated(**settings)
        separate = Separator(net)
        protocol, segment_len = evaluation_protocol(cfg.eval_protocol, cfg.samples("eval_segment"), cfg.sample_rate)
    test_file = mindrecord_file(cfg.data_dir, cfg.test_name)
    count = len(read_index(test_file)[0])
    utterances = tqdm(read_split(test_file, cfg.num_spks), total=count, desc="evaluating", unit="utt")
    rows = score_utterances(separate_utterances(utterances, separate, protocol, segment_len),
                            cfg.cal_sdr, cfg.num_workers)
    summary = summarize(rows, protocol, segment_len, cfg.sample_rate, count)
    write_results(rows, summary, cfg.results_dir)
    print_summary(summary)
    print(f"detailed results: {Path(cfg.results_dir) / results_file(summary)}")


if __name__ == "__main__":
    run_main(main)
