"""Ascend 310 (or CPU twin) results -> whole-utterance estimates -> SI-SNRi / SDRi.

    python postprocess.py --infer_dir infer_310 [--result_dir infer_310/result_Files] [--cal_sdr]

Reads manifest.json and references/ written by preprocess_310.py and one {bin}_0.bin result per
input (files_310.py describes them); scores them by the protocol preprocess_310.py cut
them for (pieces put back into utterances, or the model zoo's segments scored one by one) and
prints the averages as evaluate.py does.
"""
from pathlib import Path

from config import load_config

from errors import ArgumentParser, run_main
from fileio import one_writer
from evaluation import check_results_dir, print_summary, print_written, score_utterances, summarize, write_results
from report import Extremes
from files_310 import read_manifest, result_utterances


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--infer_dir", default="infer_310", help="preprocess_310.py's output folder")
    parser.add_argument("--result_dir", default="", help="result bins (default: INFER_DIR/result_Files)")
    cfg = load_config(argv, parser, offers=("cal_sdr", "num_workers", "report_items", "results_dir"))
    check_results_dir(cfg.results_dir)
    with one_writer(cfg.results_dir, "--results_dir"):
        score(cfg)


def score(cfg):
    result_dir = cfg.result_dir or str(Path(cfg.infer_dir) / "result_Files")
    manifest = read_manifest(cfg.infer_dir)[0]
    extremes = Extremes(cfg.report_items)
    rows = score_utterances(result_utterances(cfg.infer_dir, result_dir), cfg.cal_sdr, cfg.num_workers,
                            manifest["sample_rate"], extremes.offer)
    summary = summarize(rows, manifest["protocol"], manifest["piece_length"], manifest["sample_rate"],
                        len(manifest["utterances"]) + manifest["dropped_utterances"],
                        model=f"{result_dir} (the 310 path's results)", test_set=str(cfg.infer_dir))
    write_results(rows, summary, cfg.results_dir, extremes)
    print_summary(summary)
    print_written(summary, cfg.results_dir)


if __name__ == "__main__":
    run_main(main)
