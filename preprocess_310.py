"""Test mixtures -> fixed-length float32 .bin inputs for the Ascend 310 app (or its CPU twin).

    python preprocess_310.py --data_dir data --infer_dir infer_310 [--export_length 32000]

Each test utterance is cut into consecutive pieces of export_length samples, the last zero-padded
(evaluate.py's `--eval_segment` protocol). Writes infer_dir/input/NNNNNN.bin ([1, export_length]
float32), infer_dir/manifest.json (which bin holds which mixture_ID, offset and valid length) and
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
from evaluate import pad_piece, pieces, read_test_split
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
            manifest = {"export_length": cfg.export_length, "num_spks": cfg.num_spks,
                        "sample_rate": cfg.sample_rate, "pieces": [], "utterances": {}}
            for mixture_id, mixture, sources in tqdm(read_test_split(cfg), total=count,
                                                     desc="preprocess_310", unit="utt"):
                np.save(partial / "references" / f"{mixture_id}.npy",
                        np.concatenate([mixture[None], sources]))
                manifest["utterances"][mixture_id] = len(mixture)
                for offset, valid in pieces(len(mixture), cfg.export_length):
                    name = f"{len(manifest['pieces']):06d}.bin"
                    pad_piece(mixture, offset, valid, cfg.export_length)[None].tofile(partial / "input" / name)
                    manifest["pieces"].append({"bin": name, "mixture_ID": mixture_id, "offset": offset,
                                               "valid": valid})
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
    print(f"{len(manifest['pieces'])} input bins of {cfg.export_length} samples for "
          f"{len(manifest['utterances'])} utterances in {Path(cfg.infer_dir) / 'input'}")


if __name__ == "__main__":
    run_main(main)
