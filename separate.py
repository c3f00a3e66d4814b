"""Separate your own recordings: one file per talker, at the input's own sample rate.

    python separate.py --ckpt_path outputs/demo/best.ckpt INPUT... --out_dir separated [--plot]
    python separate.py --mindir dprnn.mindir INPUT... --out_dir separated

INPUT: audio files or folders of them (wav, flac, ogg: anything soundfile reads). Writes
OUT_DIR/<name>_s1.wav ... <name>_sC.wav, 16-bit if the input was integer PCM, float otherwise.
Long recordings go through in overlapping windows of `--window` seconds, read and written
incrementally, so memory does not grow with the file's length; each window's talkers are matched
to the previous window's on their overlap, and the overlap is cross-faded.
"""
import argparse
import os
import sys
from itertools import permutations
from pathlib import Path

from config import UserError, load_config, run_main, setup_device

import librosa
import mindspore as ms
import numpy as np
import soundfile as sf
from mindspore import nn
from tqdm import tqdm

from evaluate import Separator
from network_define import build_network, load_weights

READABLE = {"." + ext.lower() for ext in sf.available_formats()}


class FixedLengthSeparator:
    """An exported MindIR of fixed input length: [T <= length] -> [C, T], zero-padding the input."""

    def __init__(self, mindir, length):
        if not Path(mindir).is_file():
            raise UserError(f"{mindir}: no such MindIR file (make one with export.py)")
        self.model = nn.GraphCell(ms.load(str(mindir)))
        self.length = length

    def __call__(self, mixture):
        padded = np.zeros((1, self.length), np.float32)
        padded[0, :len(mixture)] = mixture
        try:
            return self.model(ms.Tensor(padded)).asnumpy()[0, :, :len(mixture)]
        except RuntimeError:
            raise UserError(f"the MindIR does not take [1, {self.length}] inputs: pass the "
                            f"--export_length it was exported with") from None


def find_inputs(paths):
    """Audio files named or found (recursively) in named folders, in order; UserError if none."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in READABLE and p.is_file())
        elif path.exists():
            files.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    if not files:
        raise UserError(f"no audio files in {', '.join(paths)} (looked for {', '.join(sorted(READABLE))})")
    return files


def best_order(previous_tail, overlap):
    """The order of this window's talkers [C, O] that best continues the previous window's [C, O]."""
    return max(permutations(range(len(overlap))),
               key=lambda perm: sum(np.dot(previous_tail[c], overlap[p]) for c, p in enumerate(perm)))


class WindowedSeparation:
    """Separates one file window by window, writing each talker's output as it goes."""

    def __init__(self, separate, model_rate, window_seconds):
        self.separate = separate
        self.model_rate = model_rate
        self.window_seconds = window_seconds

    def _separate_chunk(self, chunk, rate):
        """Mono chunk at `rate` -> [C, len(chunk)] at `rate`."""
        audio = chunk if rate == self.model_rate else librosa.resample(chunk, orig_sr=rate,
                                                                       target_sr=self.model_rate)
        estimates = self.separate(audio.astype(np.float32))
        if rate != self.model_rate:
            estimates = librosa.resample(estimates, orig_sr=self.model_rate, target_sr=rate)
        fitted = np.zeros((len(estimates), len(chunk)), np.float32)
        fitted[:, :min(len(chunk), estimates.shape[1])] = estimates[:, :len(chunk)]
        return fitted

    def run(self, source, writers, progress):
        """source: an open sf.SoundFile; writers: one open sf.SoundFile per talker."""
        rate, frames = source.samplerate, source.frames
        window = max(int(self.window_seconds * rate), 16)
        overlap = window // 4
        hop = window - overlap
        starts = list(range(0, max(frames - overlap, 1), hop))
        fade_in = np.linspace(0, 1, overlap, dtype=np.float32)
        tail = None
        for start in progress(starts):
            source.seek(start)
            chunk = source.read(min(window, frames - start), dtype="float32", always_2d=True).mean(axis=1)
            estimates = self._separate_chunk(chunk, rate)
            if tail is not None:
                estimates = estimates[list(best_order(tail, estimates[:, :len(tail[0])]))]
                head = len(tail[0])
                estimates[:, :head] = tail * (1 - fade_in[:head]) + estimates[:, :head] * fade_in[:head]
            last = start == starts[-1]
            keep = estimates.shape[1] if last else estimates.shape[1] - overlap
            for writer, estimate in zip(writers, estimates):
                writer.write(estimate[:keep])
            tail = None if last else estimates[:, keep:]


def output_subtype(info):
    return "PCM_16" if info.subtype.startswith("PCM") else "FLOAT"


def separate_file(path, out_dir, windowed, num_spks, window_bar):
    """Write out_dir/<stem>_s1.wav ...; returns their paths. Files appear only when complete."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise UserError(f"{path}: unreadable audio ({err})") from None
    if info.frames == 0:
        raise UserError(f"{path}: no samples")
    if info.channels > 1:
        tqdm.write(f"note: {path} has {info.channels} channels: separating their average")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    finals = [Path(out_dir) / f"{path.stem}_s{k + 1}.wav" for k in range(num_spks)]
    partials = [p.with_name(p.name + ".partial") for p in finals]
    writers = [sf.SoundFile(str(p), "w", samplerate=info.samplerate, channels=1, format="WAV",
                            subtype=output_subtype(info)) for p in partials]
    try:
        with sf.SoundFile(str(path)) as source:
            windowed.run(source, writers, window_bar)
        for writer in writers:
            writer.close()
        for partial, final in zip(partials, finals):
            os.replace(partial, final)
    finally:
        for writer, partial in zip(writers, partials):
            writer.close()
            partial.unlink(missing_ok=True)
    return finals


def plot_spectrograms(mixture_path, estimate_paths, png_path, max_seconds=30):
    """PNG with the spectrograms of the mixture and each estimate (their first max_seconds)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = [mixture_path] + list(estimate_paths)
    fig, axes = plt.subplots(len(paths), 1, figsize=(10, 2.2 * len(paths)), sharex=True)
    for ax, path in zip(axes, paths):
        rate = sf.info(str(path)).samplerate
        audio = sf.read(str(path), frames=int(max_seconds * rate), dtype="float32", always_2d=True)[0].mean(1)
        spectrum = librosa.amplitude_to_db(np.abs(librosa.stft(audio, n_fft=512, hop_length=128)), ref=np.max)
        ax.imshow(spectrum, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                  extent=(0, len(audio) / rate, 0, rate / 2000))
        ax.set_title(Path(path).name, fontsize=9)
        ax.set_ylabel("kHz")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def make_separator(cfg):
    if cfg.mindir:
        return FixedLengthSeparator(cfg.mindir, cfg.export_length), cfg.export_length / cfg.sample_rate
    net = build_network(cfg)
    load_weights(net, cfg.ckpt_path)
    return Separator(net), cfg.window


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="audio files or folders")
    parser.add_argument("--out_dir", default="separated")
    parser.add_argument("--mindir", default="", help="an exported MindIR instead of --ckpt_path")
    parser.add_argument("--plot", action="store_true", help="also write <name>_spectrograms.png")
    cfg = load_config(argv, parser, verbose=False)
    if not cfg.mindir and not cfg.ckpt_path:
        raise UserError("pass --ckpt_path CHECKPOINT (with its --config_path) or --mindir MODEL")
    setup_device(cfg)
    files = find_inputs(cfg.inputs)
    separate, window = make_separator(cfg)
    windowed = WindowedSeparation(separate, cfg.sample_rate, window)
    failed = 0
    for path in tqdm(files, desc="files", unit="file"):
        try:
            outputs = separate_file(path, cfg.out_dir, windowed, cfg.num_spks,
                                    lambda it: tqdm(it, desc=path.name, unit="window", leave=False))
            if cfg.plot:
                plot_spectrograms(path, outputs, Path(cfg.out_dir) / f"{path.stem}_spectrograms.png")
            tqdm.write(f"{path} -> {', '.join(str(p) for p in outputs)}")
        except (UserError, sf.LibsndfileError) as err:
            failed += 1
            tqdm.write(f"skipped: {err}")
    print(f"separated {len(files) - failed} of {len(files)} files into {cfg.out_dir}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
