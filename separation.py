"""Separation with a trained model: numpy mixtures in, one signal per talker out.

The one separation API of the project: evaluate.py, separate.py, the 310 path's CPU twin, the
self-test and bench.py separate through it (training's validation runs the network itself:
network_define.ValidationNetwork).
- Separator: a network (from a checkpoint), any length; FixedLengthSeparator: an exported MindIR
  or ONNX model (load_mindir, load_onnx), of fixed input length.
- WindowedSeparation and separate_file: a recording of any length, window by window, into one
  audio file per talker at the recording's level, never clipped (separate.py's job).
"""
import os
import re
from contextlib import ExitStack
from pathlib import Path

import librosa
import mindspore as ms
import numpy as np
import soundfile as sf
from mindspore import nn
from tqdm import tqdm

from device import eager_mode
from errors import UserError, reason_of
from fileio import LOCK, atomic_paths, cannot_write, made_folders, run_own
from metrics import best_permutation
from mindir import check_form
from model import BlockLoopNetwork

FULL_SCALE = 1.0  # float samples beyond +-1 clip in integer formats and in most players


class Separator:
    """A network that separates numpy mixtures: [T] -> [C, T], any length.

    A length met before (the windows of a long recording, fixed evaluation pieces, a benchmark)
    runs as a compiled graph (BlockLoopNetwork on CPU): compiling costs about one eager run, and
    each compiled run is then faster on CPU. A length met for the first time runs eagerly, so
    utterances of all different lengths never wait for a compile, unless the caller passes
    `compile_now` because more of that length follow (the full windows of a recording): then it
    compiles at once, which also spares the memory an eager run would hold beside the graph's.
    (With `--mode pynative` everything runs eagerly.)
    """

    def __init__(self, net):
        self.net = net
        self.net.set_train(False)
        self.compiled = compiled_network(net)
        self.seen_lengths = set()

    def __call__(self, mixture, compile_now=False):
        length = len(mixture)
        # the encoder needs one whole frame: shorter inputs are zero-padded to it
        padded = np.zeros(max(length, self.net.kernel_size), np.float32)
        padded[:length] = mixture
        batch = ms.Tensor(padded[None])
        compiled = compile_now or len(padded) in self.seen_lengths
        self.seen_lengths.add(len(padded))
        if compiled:
            return self.compiled(batch).asnumpy()[0, :, :length]
        with eager_mode():
            return self.net(batch).asnumpy()[0, :, :length]


def compiled_network(net):
    """The network Separator compiles for inference: in a CPU graph a BlockLoopNetwork of net,
    elsewhere net.

    The loop saves memory only against the CPU LSTM kernel's scratch buffers in a compiled graph;
    GPU and Ascend graphs keep no such buffers, so there the network stays as trained.
    """
    if ms.get_context("device_target") != "CPU" or ms.get_context("mode") == ms.PYNATIVE_MODE:
        return net
    looped = BlockLoopNetwork(net)
    looped.set_train(False)
    return looped


def load_mindir(path):
    """An exported MindIR as a function: float32 [1, T] -> [1, C, T] (numpy), on the current device,
    which must be the one it was exported for (export.py --export_target)."""
    check_form(path, ms.get_context("device_target").lower())
    try:
        model = nn.GraphCell(ms.load(str(path)))
    except (RuntimeError, ValueError) as err:
        raise UserError(f"{path}: not a loadable MindIR ({reason_of(err)[:200]}): "
                        f"export it again with export.py") from None
    return lambda mixture: model(ms.Tensor(mixture)).asnumpy()


def load_onnx(path):
    """An exported ONNX model in onnxruntime (CPU): (function float32 [1, T] -> [1, C, T] (numpy),
    its input length T, fixed at export)."""
    import onnxruntime  # only ONNX models need it
    if not Path(path).is_file():
        raise UserError(f"{path}: no such ONNX file (make one with export.py --file_format ONNX)")
    options = onnxruntime.SessionOptions()
    # without a memory pattern each run allocates as it goes: same speed, less peak (docs/performance.md)
    options.enable_mem_pattern = False
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own exception classes derive from Exception only
        raise UserError(f"{path}: not a loadable ONNX model ({reason_of(err)[:200]}): "
                        f"export it again with export.py --file_format ONNX") from None
    name, shape = session.get_inputs()[0].name, session.get_inputs()[0].shape
    return (lambda mixture: session.run(None, {name: mixture})[0]), shape[-1]


class FixedLengthSeparator:
    """An exported model of fixed input length (MindIR or ONNX, as load_mindir / load_onnx give
    it): [T <= length] -> [C, T], zero-padding the input. `compile_now` (Separator's) changes
    nothing: the graph is compiled already."""

    def __init__(self, model, length):
        self.model = model
        self.length = length

    def __call__(self, mixture, compile_now=False):
        padded = np.zeros((1, self.length), np.float32)
        padded[0, :len(mixture)] = mixture
        try:
            return self.model(padded)[0, :, :len(mixture)]
        except RuntimeError:
            raise UserError(f"the model does not take [1, {self.length}] inputs: pass the "
                            f"--export_length it was exported with") from None


def audio_problem(path):
    """Why soundfile cannot read the file at path as audio, or None when it can."""
    if not path.exists():
        return "a broken link"
    if path.suffix.lower() == ".raw":  # soundfile would need its rate and format
        return "headerless RAW samples (no rate, no format): convert it to wav or flac"
    try:
        open(path, "rb").close()  # libsndfile reports a file it may not read as a "System error"
        info = sf.info(str(path))
    except PermissionError:
        return "no permission to read it"
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as err:
        reason = reason_of(err)
        return f"not audio that soundfile reads ({reason})"
    return "no samples" if info.frames == 0 else None


# what separate_file and separate.py --plot name their outputs
OUTPUT_NAME = re.compile(rf".+_s\d+\.wav|.+_spectrograms\.png|listen\.html|{re.escape(LOCK)}")


def find_inputs(paths, out_dir=None):
    """(audio files named or found (recursively) in named folders, in order, each once; "path: why"
    for every other file named or found). Files found in a folder below out_dir and named as this
    command names its outputs are its earlier outputs, not inputs (a second run over a folder that
    holds its out_dir): left out, with one line saying how many. A UserError for a path that does not
    exist, or when none of the files is audio."""
    outputs = Path(out_dir).resolve() if out_dir else None

    def earlier_output(p):
        return outputs and OUTPUT_NAME.fullmatch(p.name) and p.resolve().is_relative_to(outputs)
    candidates, earlier_outputs = [], 0
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if not p.is_dir())
            kept = [p for p in found if not earlier_output(p)]
            earlier_outputs += len(found) - len(kept)
            candidates += kept
        elif path.exists() or path.is_symlink():
            candidates.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    files, skipped = [], []
    if earlier_outputs:
        skipped.append(f"{out_dir}: {earlier_outputs} earlier outputs of separate.py (*_sN.wav, "
                       f"*_spectrograms.png, listen.html) found in the folder to separate: not separated again")
    for path in candidates:
        problem = audio_problem(path)
        if problem:
            skipped.append(f"{path}: {problem}")
        else:
            files.append(path)
    if not files:
        raise UserError(f"no audio in {', '.join(paths)}: "
                        + (f"{len(skipped)} files, none of them audio (the first: {skipped[0]})" if skipped
                           else "no files"))
    return list({p.resolve(): p for p in files}.values()), skipped


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
    wide = estimates.astype(np.float64)
    return least_squares_gains(wide @ wide.T, wide @ mixture.astype(np.float64))


def least_squares_gains(gram, cross):
    """mixture_gains from its normal equations' E E^T [C, C] and E m [C] (float64): what a stream
    (streaming.StreamingSeparation) sums up block by block."""
    return np.linalg.lstsq(gram, cross, rcond=None)[0].astype(np.float32)


def check_input_finite(samples, source, start):
    """samples, read from the open sf.SoundFile source from frame start on, or a UserError."""
    if not np.isfinite(samples).all():
        raise UserError(f"{source.name}: holds NaN or infinite samples near "
                        f"{start / source.samplerate:.1f} s: repair or remove the file")
    return samples


def check_output_finite(estimates):
    """The network's estimates, or a UserError if any is NaN or infinite."""
    if not np.isfinite(estimates).all():
        raise UserError("the model's output is not finite (NaN or inf): the checkpoint is damaged "
                        "or was trained into NaN; use another checkpoint")
    return estimates


class WindowedSeparation:
    """Separates one file window by window, writing each talker's output as it goes; window_seconds
    0 separates it in one pass."""

    def __init__(self, separate, model_rate, window_seconds):
        self.separate = separate
        self.model_rate = model_rate
        self.window_seconds = window_seconds

    def _separate_chunk(self, chunk, rate, compile_now):
        """Mono chunk at `rate` -> [C, len(chunk)] at `rate`, at the chunk's level; compile_now: more
        chunks of its length follow."""
        audio = chunk if rate == self.model_rate else librosa.resample(chunk, orig_sr=rate,
                                                                       target_sr=self.model_rate)
        estimates = check_output_finite(self.separate(audio.astype(np.float32), compile_now=compile_now))
        if rate != self.model_rate:
            estimates = librosa.resample(estimates, orig_sr=self.model_rate, target_sr=rate)
        fitted = np.zeros((len(estimates), len(chunk)), np.float32)
        fitted[:, :min(len(chunk), estimates.shape[1])] = estimates[:, :len(chunk)]
        return fitted * mixture_gains(fitted, chunk)[:, None]

    def run(self, source, writers, progress):
        """source: an open sf.SoundFile; writers: one open sf.SoundFile per talker.
        Returns (each talker's peak absolute sample, the gain still to apply to it: 1, each
        window's gains are applied already)."""
        rate, frames = source.samplerate, source.frames
        window = max(int(self.window_seconds * rate), 16) if self.window_seconds else frames
        overlap = window // 4 if self.window_seconds else 0
        hop = window - overlap
        starts = list(range(0, max(frames - overlap, 1), hop))
        fade_in = np.linspace(0, 1, overlap, dtype=np.float32)
        tail = None
        peaks = np.zeros(len(writers))
        for start in progress(starts):
            source.seek(start)
            chunk = check_input_finite(source.read(min(window, frames - start), dtype="float32",
                                                   always_2d=True).mean(axis=1), source, start)
            # every window but the last is a full one
            estimates = self._separate_chunk(chunk, rate, compile_now=len(starts) > 2 and start != starts[-1])
            if tail is not None:
                # this window's talkers in the order that best continues the previous window's
                estimates = estimates[best_permutation(estimates[:, :len(tail[0])], tail, lambda a, b: (a * b).sum(-1))]
                head = len(tail[0])
                estimates[:, :head] = tail * (1 - fade_in[:head]) + estimates[:, :head] * fade_in[:head]
            last = start == starts[-1]
            keep = estimates.shape[1] if last else estimates.shape[1] - overlap
            for writer, estimate in zip(writers, estimates):
                writer.write(estimate[:keep])
            peaks = np.maximum(peaks, np.abs(estimates[:, :keep]).max(axis=1))
            tail = None if last else estimates[:, keep:]
        return peaks, np.ones(len(writers), np.float32)


def output_subtype(info):
    return "PCM_16" if info.subtype.startswith("PCM") else "FLOAT"


def _copy_scaled(source_path, target_path, scale, info, block=1 << 16):
    with sf.SoundFile(str(source_path)) as source, \
            sf.SoundFile(str(target_path), "w", samplerate=info.samplerate, channels=1, format="WAV",
                         subtype=output_subtype(info)) as target:
        for data in source.blocks(block, dtype="float32"):
            target.write(data * scale)


# what soundfile raises when a write fails: LibsndfileError, or its check of the frames written
WRITE_ERRORS = (sf.LibsndfileError, AssertionError, OSError)


class TalkerWav:
    """One talker's float wav, written while separating; a failed write (a full disk) is the final
    file's OutputError, so that it stops the run instead of passing for a bad input."""

    def __init__(self, path, final, samplerate):
        self.final = final
        try:
            self.file = sf.SoundFile(str(path), "w", samplerate=samplerate, channels=1, format="WAV",
                                     subtype="FLOAT")
        except WRITE_ERRORS as err:
            raise cannot_write(final, err) from None

    def write(self, data):
        try:
            self.file.write(data)
        except WRITE_ERRORS as err:
            raise cannot_write(self.final, err) from None

    def close(self):
        try:
            self.file.close()
        except WRITE_ERRORS as err:
            raise cannot_write(self.final, err) from None


def separate_file(path, stem, windowed, num_spks, window_bar):
    """Write <stem>_s1.wav ...; returns their paths and the gains applied to keep them under full scale.

    windowed: a WindowedSeparation or a streaming.StreamingSeparation.

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
    floats = [run_own(p, "float.wav") for p in finals]
    with made_folders(stem.parent):
        try:
            with ExitStack() as writing:
                writers = []
                for float_path, final in zip(floats, finals):
                    writers.append(TalkerWav(float_path, final, info.samplerate))
                    writing.callback(writers[-1].close)
                with sf.SoundFile(str(path)) as source:
                    peaks, gains = windowed.run(source, writers, window_bar)
            peaks = peaks * np.abs(gains)
            scales = [min(1.0, FULL_SCALE / peak) if peak > 0 else 1.0 for peak in peaks]
            with atomic_paths(*finals) as targets:
                for float_path, final, target, scale, gain in zip(floats, finals, targets, scales, gains):
                    try:
                        _copy_scaled(float_path, target, scale * gain, info)
                    except WRITE_ERRORS as err:
                        raise cannot_write(final, err) from None
        finally:
            for p in floats:
                p.unlink(missing_ok=True)
    return finals, scales
