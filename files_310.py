"""The Ascend 310 path's files: fixed-length input bins, references and manifest.json written
before inference (preprocess_310.py), and the inference results read back into utterances for
scoring (postprocess.py).

infer_dir/input/NNNNNN.bin: float32 [1, piece_length], one piece of a test mixture;
infer_dir/references/{mixture_ID}.npy: [1 + C, T], the mixture and its sources;
infer_dir/manifest.json: the protocol (pieces | zoo), piece_length (samples), num_spks,
sample_rate, which bin holds which mixture_ID at which offset with how many valid samples;
result_dir/NNNNNN_0.bin: float32 [1, C, piece_length], the model's output for each input.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np

from errors import UserError
from evaluation import layout, pad_piece, scored_items
from fileio import made_folders, run_own


OUTPUTS = ("input", "references", "manifest.json")  # the only entries of infer_dir it replaces
MARKER = ".written_by_preprocess_310"  # in input/ and references/: a folder without it is the user's


def check_ours(infer_dir):
    """UserError naming the first of infer_dir's OUTPUTS that preprocess_310.py did not write: a
    manifest.json that is not one of ours, a folder without MARKER. Those are never replaced."""
    infer_dir = Path(infer_dir)
    try:
        manifest = read_manifest(infer_dir)[0]
    except UserError:
        manifest = None
    for name in OUTPUTS:
        path = infer_dir / name
        if not (path.exists() or path.is_symlink()):
            continue
        if name == "manifest.json":
            ours = manifest is not None
        else:
            ours = path.is_dir() and not path.is_symlink() and (path / MARKER).is_file()
        if not ours:
            raise UserError(f"{path} exists and was not written by preprocess_310.py, which replaces only its "
                            f"own {', '.join(OUTPUTS)}: move it away or choose another --infer_dir")


def write_inputs(utterances, infer_dir, protocol, piece_len, num_spks, sample_rate):
    """Write bins, references and the manifest for (mixture_ID, mixture, sources) utterances;
    returns the manifest. protocol: "pieces" or "zoo"; piece_len: the MindIR's input samples.

    Built in a hidden folder inside infer_dir, then moved over the previous input/ and references/,
    with manifest.json last (the old one removed first): postprocess.py reads through the manifest,
    so a kill leaves either no manifest (postprocess.py asks for a rerun) or the complete new set.
    Nothing else in infer_dir is touched.
    """
    infer_dir = Path(infer_dir)
    check_ours(infer_dir)
    partial = run_own(infer_dir / "preprocess_310", "partial")
    try:
        with made_folders(infer_dir):
            for name in ("input", "references"):
                (partial / name).mkdir(parents=True)
                (partial / name / MARKER).write_text("replaced by preprocess_310.py when it is run again\n")
            manifest = {"protocol": protocol, "piece_length": piece_len, "num_spks": num_spks,
                        "sample_rate": sample_rate, "dropped_utterances": 0, "pieces": [], "utterances": {}}
            for mixture_id, mixture, sources in utterances:
                cuts = layout(protocol, len(mixture), piece_len)
                if not cuts:
                    manifest["dropped_utterances"] += 1
                    continue
                np.save(partial / "references" / f"{mixture_id}.npy",
                        np.concatenate([mixture[None], sources]))
                manifest["utterances"][mixture_id] = len(mixture)
                for offset, valid in cuts:
                    name = f"{len(manifest['pieces']):06d}.bin"
                    pad_piece(mixture, offset, valid, piece_len)[None].tofile(partial / "input" / name)
                    manifest["pieces"].append({"bin": name, "mixture_ID": mixture_id, "offset": offset,
                                               "valid": valid})
            if not manifest["pieces"]:
                raise UserError(f"no test utterance is {piece_len / sample_rate:g} s or longer: the zoo protocol "
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


MANIFEST_KEYS = ("protocol", "piece_length", "num_spks", "sample_rate", "dropped_utterances", "pieces",
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
                        f"come from a model exported with this manifest's piece_length and num_spks")
    return data.reshape(num_spks, length)


def result_utterances(infer_dir, result_dir):
    """(key, mixture, sources, estimates) per scored item, as evaluation.separate_utterances yields
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
        estimates = [read_result(result_dir, p, manifest["num_spks"], manifest["piece_length"]) for p in parts]
        cuts = [(p["offset"], p["valid"]) for p in parts]
        yield from scored_items(manifest["protocol"], mixture_id, reference[0], reference[1:], estimates, cuts)
