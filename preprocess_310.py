"""Test mixtures -> fixed-length float32 .bin inputs for the Ascend 310 app (or its CPU twin).

    python preprocess_310.py --data_dir data --infer_dir infer_310 [--export_length 4]
        [--eval_protocol zoo]

The MindIR takes export_length seconds at a time, so each test utterance is cut into pieces of that
length: consecutive pieces, the last zero-padded (evaluate.py's `pieces` protocol, the default
here), or with `--eval_protocol zoo` the model zoo's segments (evaluate.py's `zoo` protocol:
utterances shorter than export_length dropped, each utterance's last export_length samples added).
Writes infer_dir/input/NNNNNN.bin, infer_dir/manifest.json and infer_dir/references/ (files_310.py
describes them), replacing only those.
"""
from pathlib import Path

from config import load_config

from tqdm import tqdm

from data import mindrecord_file, read_index, read_split
from errors import ArgumentParser, run_main
from evaluation import fixed_length_protocol
from fileio import check_output_dir, one_writer
from files_310 import write_inputs


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--infer_dir", default="infer_310", help="output folder")
    cfg = load_config(argv, parser, offers=("data_dir", "test_name", "num_spks", "sample_rate", "eval_protocol",
                                            "export_length"))
    check_output_dir(cfg.infer_dir, "--infer_dir")
    with one_writer(cfg.infer_dir, "--infer_dir"):
        write_bins(cfg)


def write_bins(cfg):
    test_file = mindrecord_file(cfg.data_dir, cfg.test_name)
    count = len(read_index(test_file)[0])
    utterances = tqdm(read_split(test_file, cfg.num_spks), total=count, desc="preprocess_310", unit="utt")
    manifest = write_inputs(utterances, cfg.infer_dir, fixed_length_protocol(cfg.eval_protocol),
                            cfg.samples("export_length"), cfg.num_spks, cfg.sample_rate)
    dropped = manifest["dropped_utterances"]
    print(f"{len(manifest['pieces'])} input bins of {cfg.export_length:g} s ({manifest['protocol']}) for "
          f"{len(manifest['utterances'])} utterances in {Path(cfg.infer_dir) / 'input'}"
          + (f"; {dropped} utterances shorter than {cfg.export_length:g} s dropped" if dropped else ""))


if __name__ == "__main__":
    run_main(main)
