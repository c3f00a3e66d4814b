"""Separate your own recordings: one file per talker, at the input's own sample rate.

    python separate.py --ckpt_path outputs/demo/best.ckpt INPUT... --out_dir separated [--plot]
    python separate.py --mindir dprnn.mindir INPUT... --out_dir separated
    python separate.py --onnx dprnn.onnx INPUT... --out_dir separated     # onnxruntime
    python separate.py --ckpt_path causal.ckpt --streaming [--block_ms 20] INPUT...  # a causal model

INPUT: audio files or folders of them (wav, flac, ogg: anything soundfile reads; anything else found,
and any file that cannot be separated, gets one `skipped:` line with the reason, and the others go on;
the exit status is 0 when at least one file was separated, 1 when none was). Writes
OUT_DIR/<folders>/<name>_s1.wav ... <name>_sC.wav, mirroring the inputs' folders below their common
parent, 16-bit if the input was integer PCM, float otherwise; existing outputs are replaced only
with --overwrite. OUT_DIR/listen.html plays each input and its talkers, with their spectrograms
(report.py). Each talker is brought to its level in the recording (least-squares gains under
which the talkers add up to the mixture) and never clipped: an output that would still exceed full
scale is scaled down as a whole, and a note says so.

Long recordings go through in overlapping windows of `--window` seconds, read and written
incrementally, so memory does not grow with the file's length; each window's talkers are matched
to the previous window's on their overlap, and the overlap is cross-faded; `--window 0` separates
each file in one pass. `--streaming` feeds a causal model's checkpoint (causal: true) the file in
blocks of `--block_ms` and writes what it outputs as it comes (streaming.StreamingSeparator): the
same output as `--window 0`, with the model's latency (docs/separation.md).
"""
from pathlib import Path

from config import check_length, load_config

import numpy as np
import soundfile as sf
from tqdm import tqdm

from checkpoint import trained_network
from device import setup_device
from errors import ArgumentParser, UserError, run_main
from fileio import OutputError, atomic_path, check_output_dir, one_writer
from report import LISTEN, check_replaceable, files_spectrograms, write_listening_page
from separation import (FixedLengthSeparator, Separator, WindowedSeparation, find_inputs, load_mindir, load_onnx,
                        output_paths, output_stems, separate_file)
from streaming import StreamingSeparation, StreamingSeparator


def make_separation(cfg):
    """(how each file is separated, cfg with a checkpoint's own model settings)."""
    if (cfg.onnx or cfg.mindir) and (cfg.streaming or cfg.window == 0):
        raise UserError("--streaming and --window 0 need --ckpt_path: an exported model separates "
                        "windows of the fixed length it was exported with")
    if cfg.onnx:
        model, length = load_onnx(cfg.onnx)
        return WindowedSeparation(FixedLengthSeparator(model, length), cfg.sample_rate, length / cfg.sample_rate), cfg
    if cfg.mindir:
        separator = FixedLengthSeparator(load_mindir(cfg.mindir), cfg.samples("export_length"))
        return WindowedSeparation(separator, cfg.sample_rate, cfg.export_length), cfg
    net, cfg = trained_network(cfg)
    if cfg.streaming:
        try:
            separator = StreamingSeparator(net)
        except ValueError as err:
            raise UserError(f"{cfg.ckpt_path}: {err}") from None
        return StreamingSeparation(separator, cfg.sample_rate, cfg.block_ms), cfg
    return WindowedSeparation(Separator(net), cfg.sample_rate, cfg.window), cfg


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="audio files or folders")
    parser.add_argument("--out_dir", default="separated")
    parser.add_argument("--mindir", default="", help="an exported MindIR instead of --ckpt_path")
    parser.add_argument("--onnx", default="", help="an exported ONNX model instead of --ckpt_path (onnxruntime)")
    parser.add_argument("--plot", action="store_true", help="also write <name>_spectrograms.png")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that exist already")
    parser.add_argument("--streaming", action="store_true",
                        help="feed a causal checkpoint the input block by block (streaming.StreamingSeparator)")
    parser.add_argument("--block_ms", type=float, default=20.0, help="milliseconds per block with --streaming")
    # model settings come with the checkpoint; num_spks, sample_rate, export_length are an exported model's
    cfg = load_config(argv, parser, verbose=False, offers=("ckpt_path", "window", "export_length", "sample_rate",
                                                           "num_spks", "device"))
    if not (cfg.mindir or cfg.onnx or cfg.ckpt_path):
        raise UserError("pass --ckpt_path CHECKPOINT, --mindir MODEL or --onnx MODEL")
    setup_device(**cfg.group("device"))
    files, skipped = find_inputs(cfg.inputs, cfg.out_dir)
    check_output_dir(cfg.out_dir, "--out_dir")
    check_replaceable(Path(cfg.out_dir) / LISTEN)
    check_length("--block_ms", cfg, cfg.block_ms, unit=1e-3, whole_frame=False)
    with one_writer(cfg.out_dir, "--out_dir"):
        separate_all(cfg, files, skipped)


def separate_all(cfg, files, skipped):
    """Separate `files` into cfg.out_dir and write its listening page; `skipped`: lines so far."""
    separation, cfg = make_separation(cfg)
    stems = output_stems(files, cfg.out_dir)
    if not cfg.overwrite:
        existing = [p for stem in stems for p in output_paths(stem, cfg.num_spks) if p.exists()]
        if existing:
            raise UserError(f"{existing[0]} exists ({len(existing)} of the outputs do): pass --overwrite "
                            f"to replace them, or choose another --out_dir")
    for line in skipped:
        print(f"skipped: {line}")
    separated = []
    for path, stem in tqdm(list(zip(files, stems)), desc="files", unit="file"):
        try:
            outputs, scales = separate_file(path, stem, separation, cfg.num_spks,
                                            lambda it: tqdm(it, desc=path.name, unit="block", leave=False))
            for output, scale in zip(outputs, scales):
                if scale < 1:
                    tqdm.write(f"note: {output} scaled by {20 * np.log10(scale):.1f} dB to stay below "
                               f"full scale (not clipped)")
            if cfg.plot:
                with atomic_path(stem.with_name(f"{stem.name}_spectrograms.png")) as png:
                    Path(png).write_bytes(files_spectrograms([path] + outputs, "png"))
            tqdm.write(f"{path} -> {', '.join(str(p) for p in outputs)}")
            separated.append((path, outputs))
        except OutputError:
            raise
        except (UserError, sf.LibsndfileError) as err:
            skipped.append(str(err))
            tqdm.write(f"skipped: {err}")
    if not separated:
        raise UserError(f"no file separated: {skipped[0]}")
    page = write_listening_page(cfg.out_dir, separated)
    print(f"separated {len(separated)} file{'s' * (len(separated) != 1)} into {cfg.out_dir}"
          + (f"; skipped {len(skipped)} (the 'skipped:' lines above)" if skipped else ""))
    print(f"listen to them: {page} (open it in a browser)")


if __name__ == "__main__":
    run_main(main)
