"""Ascend 310 (or CPU twin) results -> whole-utterance estimates -> SI-SNRi / SDRi.

    python postprocess.py --infer_dir infer_310 [--result_dir infer_310/result_Files] [--cal_sdr]

Reads manifest.json and references/ written by preprocess_310.py and one {bin}_0.bin result per
input (float32 [1, num_spks, export_length]); scores them by the protocol preprocess_310.py cut
them for (pieces put back into utterances, or the model zoo's segments scored one by one) and
prints the averages as evaluate.py does.
"""
import argparse
import json
from pathlib import Path

from config import UserError, load_config, run_main

import numpy as np

from evaluate import print_summary, reassemble, score_utterances, summarize, write_results, zoo_item
from fileio import check_output_dir


MANIFEST_KEYS = ("protocol", "export_length", "num_spks", "sample_rate", "dropped_utterances", "pieces",
                 "utterances")
PIECE_KEYS = ("bin", "mixture_ID", "offset", "valid")


def read_manifest(infer_dir):
    path = Path(infer_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        missing = [k for k in MANIFEST_KEYS if k not in manifest]
        missing += sorted({k for piece in manifest.get("pieces", []) for k in PIECE_KEYS if k not in piece})
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise UserError(f"{path}: not a preprocess_310.py manifest ({err}): run preprocess_310.py") from None
    if missing:
        raise UserError(f"{path}: not a preprocess_310.py manifest (no {', '.join(missing)}): run "
                        f"preprocess_310.py")
    if not manifest["pieces"]:
        raise UserError(f"{path}: lists no inputs: run preprocess_310.py on a test split that has some")
    return manifest, manifest["pieces"], manifest["utterances"]


def read_result(result_dir, piece, num_spks, length):
    path = Path(result_dir) / piece["bin"].replace(".bin", "_0.bin")
    if not path.is_file():
        raise UserError(f"{path}: missing result for input {piece['bin']}: rerun the inference step")
    data = np.fromfile(path, np.float32)
    if not np.isfinite(data).all():
        raise UserError(f"{path}: holds NaN or infinite values: the model or its inference run is "
                        f"broken; check the MindIR and rerun the inference step")
    if data.size != num_spks * length:
        raise UserError(f"{path}: {data.size} values, expected {num_spks} x {length}: the results do not "
                        f"come from a model exported with this manifest's export_length and num_spks")
    return data.reshape(num_spks, length)


def result_utterances(infer_dir, result_dir):
    """(key, mixture, sources, estimates) per scored item, as evaluate.separate_utterances yields
    them: utterances reassembled from their pieces, or each zoo segment alone."""
    manifest, pieces, lengths = read_manifest(infer_dir)
    by_utterance = {}
    for piece in pieces:
        by_utterance.setdefault(piece["mixture_ID"], []).append(piece)
    if set(by_utterance) != set(lengths):
        raise UserError(f"{infer_dir}/manifest.json lists utterances without pieces: it is damaged; "
                        f"rerun preprocess_310.py")
    for mixture_id, parts in by_utterance.items():
        ref_path = Path(infer_dir) / "references" / f"{mixture_id}.npy"
        if not ref_path.is_file():
            raise UserError(f"{ref_path}: missing reference for {mixture_id}: rerun preprocess_310.py")
        reference = np.load(ref_path)
        if reference.shape != (manifest["num_spks"] + 1, lengths[mixture_id]):
            raise UserError(f"{ref_path}: shape {reference.shape} does not match the manifest: rerun "
                            f"preprocess_310.py")
        estimates = [read_result(result_dir, p, manifest["num_spks"], manifest["export_length"]) for p in parts]
        if manifest["protocol"] == "zoo":
            for part, estimate in zip(parts, estimates):
                window = slice(part["offset"], part["offset"] + part["valid"])
                yield zoo_item(mixture_id, part["offset"], reference[0, window], reference[1:, window], estimate)
            continue
        layout = [(p["offset"], p["valid"]) for p in parts]
        yield {"mixture_ID": mixture_id}, reference[0], reference[1:], reassemble(estimates, layout, reference[1:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--infer_dir", default="infer_310", help="preprocess_310.py's output folder")
    parser.add_argument("--result_dir", default="", help="result bins (default: INFER_DIR/result_Files)")
    cfg = load_config(argv, parser)
    check_output_dir(cfg.results_dir, "--results_dir")
    result_dir = cfg.result_dir or str(Path(cfg.infer_dir) / "result_Files")
    manifest = read_manifest(cfg.infer_dir)[0]
    rows = score_utterances(result_utterances(cfg.infer_dir, result_dir), cfg.cal_sdr, cfg.num_workers)
    summary = summarize(rows, manifest["protocol"], manifest["export_length"], manifest["sample_rate"],
                        len(manifest["utterances"]) + manifest["dropped_utterances"])
    write_results(rows, summary, cfg.results_dir)
    print_summary(summary)


if __name__ == "__main__":
    run_main(main)
