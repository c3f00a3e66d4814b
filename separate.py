"""Separate your own recordings: one file per talker, at the input's own sample rate.

    python separate.py --ckpt_path outputs/demo/best.ckpt INPUT... --out_dir separated [--plot]
    python separate.py --mindir dprnn.mindir INPUT... --out_dir separated

INPUT: audio files or folders of them (wav, flac, ogg: anything soundfile reads). Writes
OUT_DIR/<folders>/<name>_s1.wav ... <name>_sC.wav, mirroring the inputs' folders below their common
parent, 16-bit if the input was integer PCM, float otherwise; existing outputs are replaced only
with --overwrite. Each talker is brought to its level in the recording (least-squares gains under
which the talkers add up to the mixture) and never clipped: an output that would still exceed full
scale is scaled down as a whole, and a note says so.

Long recordings go through in overlapping windows of `--window` seconds, read and written
incrementally, so memory does not grow with the file's length; each window's talkers are matched
to the previous window's on their overlap, and the overlap is cross-faded.
"""
import argparse
import os
from contextlib import ExitStack
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
from fileio import atomic_path, check_output_dir, made_folders
from network_define import network_from_checkpoint

READABLE = {"." + ext.lower() for ext in sf.available_formats()}
FULL_SCALE = 1.0  # float samples beyond +-1 clip in integer formats and in most players


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
    """Audio files named or found (recursively) in named folders, in order, each once; UserError if none."""
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
    return list({p.resolve(): p for p in files}.values())


def output_stems(files, out_dir):
    """out_dir/<folders>/<stem> for each input, mirroring the inputs' folders below their common
    parent so that a/x.wav and b/x.wav never write the same outputs; UserError if two still would."""
    parents = [p.resolve().parent for p in files]
    common = Path(os.path.commonpath(parents))
    stems = [Path(out_dir) / parent.relative_to(common) / p.stem for p, parent in zip(files, parents)]
    first_with = {}
    for path, stem in zip(files, stems):
        if stem in first_with:
            raise UserError(f"{first_with[stem]} and {path} would both be written as {stem}_s1.wav: "
                            f"rename one of them or separate them apart")
        first_with[stem] = path
    return stems


def output_paths(stem, num_spks):
    return [stem.with_name(f"{stem.name}_s{k + 1}.wav") for k in range(num_spks)]


def mixture_gains(estimates, mixture):
    """Least-squares gains g [C] that make sum_c g_c estimates[c] closest to the mixture [T].

    The network's outputs have no fixed scale (SI-SNR, its training loss, ignores scale), so each
    window is brought to the level the talkers have in the recording: the gains under which the
    estimates add up to the mixture. A gain never changes an estimate's SI-SNR.
    """
    gains = np.linalg.lstsq(estimates.T.astype(np.float64), mixture.astype(np.float64), rcond=None)[0]
    return gains.astype(np.float32)


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
        """Mono chunk at `rate` -> [C, len(chunk)] at `rate`, at the chunk's level."""
        audio = chunk if rate == self.model_rate else librosa.resample(chunk, orig_sr=rate,
                                                                       target_sr=self.model_rate)
        estimates = self.separate(audio.astype(np.float32))
        if not np.isfinite(estimates).all():
            raise UserError("the model's output is not finite (NaN or inf): the checkpoint is damaged "
                            "or was trained into NaN; use another checkpoint")
        if rate != self.model_rate:
            estimates = librosa.resample(estimates, orig_sr=self.model_rate, target_sr=rate)
        fitted = np.zeros((len(estimates), len(chunk)), np.float32)
        fitted[:, :min(len(chunk), estimates.shape[1])] = estimates[:, :len(chunk)]
        return fitted * mixture_gains(fitted, chunk)[:, None]

    def run(self, source, writers, progress):
        """source: an open sf.SoundFile; writers: one open sf.SoundFile per talker.
        Returns each talker's peak absolute sample."""
        rate, frames = source.samplerate, source.frames
        window = max(int(self.window_seconds * rate), 16)
        overlap = window // 4
        hop = window - overlap
        starts = list(range(0, max(frames - overlap, 1), hop))
        fade_in = np.linspace(0, 1, overlap, dtype=np.float32)
        tail = None
        peaks = np.zeros(len(writers))
        for start in progress(starts):
            source.seek(start)
            chunk = source.read(min(window, frames - start), dtype="float32", always_2d=True).mean(axis=1)
            if not np.isfinite(chunk).all():
                raise UserError(f"{source.name}: holds NaN or infinite samples near "
                                f"{start / rate:.1f} s: repair or remove the file")
            estimates = self._separate_chunk(chunk, rate)
            if tail is not None:
                estimates = estimates[list(best_order(tail, estimates[:, :len(tail[0])]))]
                head = len(tail[0])
                estimates[:, :head] = tail * (1 - fade_in[:head]) + estimates[:, :head] * fade_in[:head]
            last = start == starts[-1]
            keep = estimates.shape[1] if last else estimates.shape[1] - overlap
            for writer, estimate in zip(writers, estimates):
                writer.write(estimate[:keep])
            peaks = np.maximum(peaks, np.abs(estimates[:, :keep]).max(axis=1))
            tail = None if last else estimates[:, keep:]
        return peaks


def output_subtype(info):
    return "PCM_16" if info.subtype.startswith("PCM") else "FLOAT"


def _copy_scaled(source_path, target_path, scale, info, block=1 << 16):
    with sf.SoundFile(str(source_path)) as source, \
            sf.SoundFile(str(target_path), "w", samplerate=info.samplerate, channels=1, format="WAV",
                         subtype=output_subtype(info)) as target:
        for data in source.blocks(block, dtype="float32"):
            target.write(data * scale)


def separate_file(path, stem, windowed, num_spks, window_bar):
    """Write <stem>_s1.wav ...; returns their paths and the gains applied to keep them under full scale.

    The talkers are written as float while separating (their peaks are known only at the end), then
    converted to the output format, scaled down where a sample would exceed full scale: an output
    is never clipped. Files appear only when complete; an earlier output stays until then.
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise UserError(f"{path}: unreadable audio ({err})") from None
    if info.frames == 0:
        raise UserError(f"{path}: no samples")
    if info.channels > 1:
        tqdm.write(f"note: {path} has {info.channels} channels: separating their average")
    finals = output_paths(stem, num_spks)
    floats = [p.with_name(f".{p.name}.float.wav") for p in finals]
    with made_folders(stem.parent):
        try:
            with ExitStack() as writing:
                writers = [writing.enter_context(sf.SoundFile(str(p), "w", samplerate=info.samplerate,
                                                              channels=1, format="WAV", subtype="FLOAT"))
                           for p in floats]
                with sf.SoundFile(str(path)) as source:
                    peaks = windowed.run(source, writers, window_bar)
            scales = [min(1.0, FULL_SCALE / peak) if peak > 0 else 1.0 for peak in peaks]
            with ExitStack() as replacing:
                targets = [replacing.enter_context(atomic_path(p)) for p in finals]
                for float_path, target, scale in zip(floats, targets, scales):
                    _copy_scaled(float_path, target, scale, info)
        finally:
            for p in floats:
                p.unlink(missing_ok=True)
    return finals, scales


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
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def make_separator(cfg):
    """(separate function, window seconds, cfg with a checkpoint's own model settings)."""
    if cfg.mindir:
        return FixedLengthSeparator(cfg.mindir, cfg.export_length), cfg.export_length / cfg.sample_rate, cfg
    net, cfg = network_from_checkpoint(cfg)
    return Separator(net), cfg.window, cfg


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="audio files or folders")
    parser.add_argument("--out_dir", default="separated")
    parser.add_argument("--mindir", default="", help="an exported MindIR instead of --ckpt_path")
    parser.add_argument("--plot", action="store_true", help="also write <name>_spectrograms.png")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that exist already")
    cfg = load_config(argv, parser, verbose=False)
    if not cfg.mindir and not cfg.ckpt_path:
        raise UserError("pass --ckpt_path CHECKPOINT or --mindir MODEL")
    setup_device(cfg)
    files = find_inputs(cfg.inputs)
    check_output_dir(cfg.out_dir, "--out_dir")
    separate, window, cfg = make_separator(cfg)
    stems = output_stems(files, cfg.out_dir)
    if not cfg.overwrite:
        existing = [p for stem in stems for p in output_paths(stem, cfg.num_spks) if p.exists()]
        if existing:
            raise UserError(f"{existing[0]} exists ({len(existing)} of the outputs do): pass --overwrite "
                            f"to replace them, or choose another --out_dir")
    windowed = WindowedSeparation(separate, cfg.sample_rate, window)
    failed = []
    for path, stem in tqdm(list(zip(files, stems)), desc="files", unit="file"):
        try:
            outputs, scales = separate_file(path, stem, windowed, cfg.num_spks,
                                            lambda it: tqdm(it, desc=path.name, unit="window", leave=False))
            for output, scale in zip(outputs, scales):
                if scale < 1:
                    tqdm.write(f"note: {output} scaled by {20 * np.log10(scale):.1f} dB to stay below "
                               f"full scale (not clipped)")
            if cfg.plot:
                plot_spectrograms(path, outputs, stem.with_name(f"{stem.name}_spectrograms.png"))
            tqdm.write(f"{path} -> {', '.join(str(p) for p in outputs)}")
        except (UserError, sf.LibsndfileError) as err:
            failed.append(str(err))
            tqdm.write(f"skipped: {err}")
    print(f"separated {len(files) - len(failed)} of {len(files)} files into {cfg.out_dir}")
    if failed:
        raise UserError(f"{len(failed)} of {len(files)} files not separated (see 'skipped:' above); "
                        f"the first: {failed[0]}")


if __name__ == "__main__":
    run_main(main)
