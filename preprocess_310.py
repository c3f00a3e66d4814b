"""Test mixtures -> fixed-length float32 .bin inputs for the Ascend 310 app (or its CPU twin).

    python preprocess_310.py --data_dir data --infer_dir infer_310 [--export_length 32000]
        [--eval_protocol zoo]

The MindIR takes export_length samples at a time, so each test utterance is cut into pieces of that
length: consecutive pieces, the last zero-padded (evaluate.py's `pieces` protocol, the default
here), or with `--eval_protocol zoo` the model zoo's segments (evaluate.py's `zoo` protocol:
utterances shorter than export_length dropped, each utterance's last export_length samples added).
Writes infer_dir/input/NNNNNN.bin ([1, export_length] float32), infer_dir/manifest.json (the
protocol, which bin holds which mixture_ID, offset and valid length) and
infer_dir/references/{mixture_ID}.npy (mixture and sources, for postprocess.py).
"""
import argparse
import json
import os
import shutil
from pathlib import Path

from config import UserError, load_config, run_main

import numpy as np
from tqdm import tqdm

from data import mindrecord_file, read_index
from evaluate import pad_piece, pieces, read_test_split, zoo_segments
from fileio import check_output_dir, made_folders


OUTPUTS = ("input", "references", "manifest.json")  # the only entries of infer_dir it replaces


def write_inputs(cfg, infer_dir):
    """Write bins, references and the manifest; returns the manifest.

    Built in a hidden folder inside infer_dir, then moved over the previous input/ and references/,
    with manifest.json last (the old one removed first): postprocess.py reads through the manifest,
    so a kill leaves either no manifest (postprocess.py asks for a rerun) or the complete new set.
    Nothing else in infer_dir is touched.
    """
    infer_dir = Path(infer_dir)
    count = len(read_index(mindrecord_file(cfg.data_dir, cfg.test_name))[0])
    partial = infer_dir / ".preprocess_310.partial"  # one fixed name: a run removes what a killed one left
    try:
        with made_folders(infer_dir):
            shutil.rmtree(partial, ignore_errors=True)
            (partial / "input").mkdir(parents=True)
            (partial / "references").mkdir()
            protocol = "zoo" if cfg.eval_protocol == "zoo" else "pieces"
            manifest = {"protocol": protocol, "export_length": cfg.export_length, "num_spks": cfg.num_spks,
                        "sample_rate": cfg.sample_rate, "dropped_utterances": 0, "pieces": [],
                        "utterances": {}}
            for mixture_id, mixture, sources in tqdm(read_test_split(cfg), total=count,
                                                     desc="preprocess_310", unit="utt"):
                if protocol == "zoo":
                    layout = [(start, cfg.export_length) for start in zoo_segments(len(mixture), cfg.export_length)]
                else:
                    layout = pieces(len(mixture), cfg.export_length)
                if not layout:
                    manifest["dropped_utterances"] += 1
                    continue
                np.save(partial / "references" / f"{mixture_id}.npy",
                        np.concatenate([mixture[None], sources]))
                manifest["utterances"][mixture_id] = len(mixture)
                for offset, valid in layout:
                    name = f"{len(manifest['pieces']):06d}.bin"
                    pad_piece(mixture, offset, valid, cfg.export_length)[None].tofile(partial / "input" / name)
                    manifest["pieces"].append({"bin": name, "mixture_ID": mixture_id, "offset": offset,
                                               "valid": valid})
            if not manifest["pieces"]:
                raise UserError(f"no test utterance is {cfg.export_length} samples or longer: the zoo protocol "
                                f"dropped all {manifest['dropped_utterances']}; export with a shorter --export_length")
            (partial / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
            (infer_dir / "manifest.json").unlink(missing_ok=True)
            for name in OUTPUTS:
                if (infer_dir / name).is_dir():
                    os.replace(infer_dir / name, partial / f"old-{name}")
                os.replace(partial / name, infer_dir / name)
    except OSError as err:
        raise UserError(f"{infer_dir}: cannot write the inputs ({err.strerror})") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--infer_dir", default="infer_310", help="output folder")
    cfg = load_config(argv, parser)
    check_output_dir(cfg.infer_dir, "--infer_dir")
    manifest = write_inputs(cfg, cfg.infer_dir)
    dropped = manifest["dropped_utterances"]
    print(f"{len(manifest['pieces'])} input bins of {cfg.export_length} samples ({manifest['protocol']}) for "
          f"{len(manifest['utterances'])} utterances in {Path(cfg.infer_dir) / 'input'}"
          + (f"; {dropped} utterances shorter than {cfg.export_length} samples dropped" if dropped else ""))


if __name__ == "__main__":
    run_main(main)
