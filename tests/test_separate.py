"""separate.py: windowed long-file separation, talker order across windows, formats, bad files."""
import subprocess
import sys
import tracemalloc
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import soundfile as sf

from checkpoint import build_network
from config import UserError, load_config
from helpers import TINY_MODEL, run_in_process
from metrics import si_snr
from separation import WindowedSeparation, find_inputs, output_stems, separate_file

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_MODEL


class ShuffledOracle:
    """A stand-in separator: the talker is in a random one of two outputs, silence in the other."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def __call__(self, mixture, compile_now=False):
        outputs = np.stack([mixture, np.zeros_like(mixture)])
        return outputs[::-1].copy() if self.rng.random() < 0.5 else outputs


def separate_with(separator, path, out_dir, window=1.0, rate=8000):
    windowed = WindowedSeparation(separator, rate, window)
    return separate_file(Path(path), Path(out_dir) / Path(path).stem, windowed, 2, lambda it: it)[0]


class ScaledEstimates:
    """A stand-in separator returning fixed estimates [C, T] (cut to the input's length)."""

    def __init__(self, estimates):
        self.estimates = estimates

    def __call__(self, mixture, compile_now=False):
        return self.estimates[:, :len(mixture)]


def speech_like(rng, length, period):
    return (rng.standard_normal(length) * np.sin(np.arange(length) / period) ** 2).astype(np.float32)


@pytest.mark.parametrize("loud_sources", [False, True])
def test_outputs_are_at_the_mixture_level_and_never_clipped(tmp_path, loud_sources):
    """Estimates 30x above full scale are brought to the mixture's level; sources that are louder
    than full scale themselves (they cancel in the mixture) are scaled down, not clipped. Either way
    the written 16-bit files score the SI-SNR of the float estimates."""
    rng = np.random.default_rng(5)
    length = 8000 * 3
    first, second = speech_like(rng, length, 700), speech_like(rng, length, 1100)
    if loud_sources:
        common = 1.5 * np.sin(np.arange(length) / 40).astype(np.float32)
        sources = np.stack([common + 0.1 * first, -0.95 * common + 0.1 * second])
    else:
        sources = np.stack([0.15 * first, 0.12 * second])
    mixture = sources.sum(0)
    assert np.abs(mixture).max() < 1
    sf.write(tmp_path / "mix.wav", mixture, 8000, subtype="PCM_16")
    estimates = 30 * (sources + 0.1 * sources[::-1] + 0.01 * rng.standard_normal(sources.shape))
    outputs = separate_with(ScaledEstimates(estimates.astype(np.float32)), tmp_path / "mix.wav",
                            tmp_path / "out", window=10)
    written = np.stack([sf.read(p, dtype="float32")[0] for p in outputs])
    assert sf.info(str(outputs[0])).subtype == "PCM_16"
    assert np.abs(written).max() <= 1 and (np.abs(written) >= 32767 / 32768).sum() <= 2
    np.testing.assert_allclose(si_snr(written, sources), si_snr(estimates, sources), atol=0.05)
    if not loud_sources:  # in range: at the level where the talkers add up to the mixture best
        heard = sf.read(tmp_path / "mix.wav", dtype="float32")[0]
        true_level = estimates / 30
        assert np.sum((written.sum(0) - heard) ** 2) <= 1.01 * np.sum((true_level.sum(0) - heard) ** 2)


def test_inputs_of_the_same_name_get_their_own_outputs(tmp_path):
    files = [tmp_path / "a" / "x.wav", tmp_path / "b" / "x.wav", tmp_path / "a" / "c" / "x.flac"]
    stems = output_stems(files, tmp_path / "out")
    assert stems == [tmp_path / "out" / "a" / "x", tmp_path / "out" / "b" / "x",
                     tmp_path / "out" / "a" / "c" / "x"]
    assert output_stems(files[:1], tmp_path / "out") == [tmp_path / "out" / "x"]
    with pytest.raises(UserError, match="x.wav and .*x.flac would both be written as"):
        output_stems([tmp_path / "x.wav", tmp_path / "x.flac"], tmp_path / "out")


def test_windows_are_stitched_in_a_consistent_talker_order(tmp_path):
    rng = np.random.default_rng(1)
    speech = speech_like(rng, 8000 * 20, 900)
    speech *= 0.9 / np.abs(speech).max()  # in range: written as it is, not scaled down
    sf.write(tmp_path / "long.wav", speech, 8000, subtype="FLOAT")
    outputs = separate_with(ShuffledOracle(), tmp_path / "long.wav", tmp_path, window=1.3)
    first, second = (sf.read(p, dtype="float32")[0] for p in outputs)
    assert len(first) == len(second) == len(speech)
    talker, silence = (first, second) if np.abs(first).sum() > np.abs(second).sum() else (second, first)
    np.testing.assert_allclose(talker, speech, atol=1e-6)
    assert np.abs(silence).max() < 1e-6


@pytest.mark.parametrize("seconds, expected", [(10, [True] * 6 + [False]), (3, [False, False]), (1.5, [False])])
def test_full_windows_are_announced_as_repeating(tmp_path, seconds, expected):
    """Separator compiles a length said to repeat at its first call instead of running it eagerly
    first (an eager run's memory would stay beside the graph's): every window of a recording but
    the last is said to repeat, when at least two full windows come."""
    sf.write(tmp_path / "x.wav", np.zeros(int(8000 * seconds), np.float32), 8000, subtype="FLOAT")
    calls = []

    def spy(mixture, compile_now=False):
        calls.append((len(mixture), compile_now))
        return np.stack([mixture, mixture])
    separate_with(spy, tmp_path / "x.wav", tmp_path, window=2.0)
    assert [compile_now for _, compile_now in calls] == expected
    assert len({length for length, compile_now in calls if compile_now}) <= 1


def test_separator_compiles_a_repeating_length_at_its_first_call(monkeypatch):
    import mindspore as ms
    from model import DPRNN
    from separation import Separator
    net = DPRNN(in_channels=8, hidden_channels=6, bn_channels=10, num_layers=2, K=16, lstm_for="CPU")
    separator = Separator(net)
    ran = []
    monkeypatch.setattr(separator, "compiled", lambda batch: ran.append("compiled") or net(batch))
    mixture = np.random.default_rng(0).standard_normal(300).astype(np.float32)
    compiled_at_once = separator(mixture, compile_now=True)
    assert ran == ["compiled"]
    separator(mixture[:200])
    assert ran == ["compiled"]  # a new length without compile_now: eager
    separator(mixture)
    assert ran == ["compiled", "compiled"]
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        eager = net(ms.Tensor(mixture[None])).asnumpy()[0]
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)
    np.testing.assert_allclose(compiled_at_once, eager, rtol=1e-4, atol=1e-4)


def test_memory_does_not_grow_with_length(tmp_path):
    def peak(seconds):
        sf.write(tmp_path / f"{seconds}.wav", np.zeros(8000 * seconds, np.int16), 8000, subtype="PCM_16")
        tracemalloc.start()
        separate_with(ShuffledOracle(), tmp_path / f"{seconds}.wav", tmp_path, window=2.0)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top
    assert peak(240) < 1.5 * peak(30)


def test_rate_format_and_channels_follow_the_input(tmp_path):
    rng = np.random.default_rng(2)
    stereo = (rng.standard_normal((16000 * 3, 2)) * 0.1).astype(np.float32)
    sf.write(tmp_path / "stereo.flac", stereo, 16000, subtype="PCM_16")
    sf.write(tmp_path / "float.wav", stereo[:, 0], 16000, subtype="FLOAT")
    for name, subtype in (("stereo.flac", "PCM_16"), ("float.wav", "FLOAT")):
        for path in separate_with(ShuffledOracle(), tmp_path / name, tmp_path / "out", window=1.0):
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, subtype, 48000)


def test_inputs_from_files_and_folders(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.wav", "a/b/y.flac"):
        sf.write(tmp_path / name, np.zeros(100, np.float32), 8000)
    (tmp_path / "a" / "notes.txt").write_text("notes")
    found, skipped = find_inputs([str(tmp_path / "a")])
    assert [p.name for p in found] == ["y.flac", "x.wav"]
    assert skipped == [f"{tmp_path / 'a' / 'notes.txt'}: not audio that soundfile reads (Error opening "
                       f"'{tmp_path / 'a' / 'notes.txt'}': Format not recognised.)"]


def test_everything_in_a_folder_that_is_not_audio_is_skipped_with_its_reason(tmp_path):
    """What a messy folder holds beside one good wav (in a subfolder): each other entry is named once
    with why, and the wav is found."""
    messy = tmp_path / "messy"
    (messy / "sub").mkdir(parents=True)
    sf.write(messy / "sub" / "good.wav", np.full(800, 0.1, np.float32), 8000)
    (messy / "notes.raw").write_bytes(np.random.default_rng(0).bytes(4000))
    (messy / "readme.txt").write_text("read me")
    (messy / "random.wav").write_bytes(np.random.default_rng(1).bytes(4000))
    (messy / "zero.wav").write_bytes(b"")
    (messy / "folder.wav").mkdir()
    (messy / "broken.flac").symlink_to(tmp_path / "nowhere.flac")
    found, skipped = find_inputs([str(messy)])
    assert found == [messy / "sub" / "good.wav"]
    reasons = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in skipped}
    assert set(reasons) == {str(messy / n) for n in ("notes.raw", "readme.txt", "random.wav", "zero.wav",
                                                      "broken.flac")}
    assert reasons[str(messy / "notes.raw")].startswith("headerless RAW samples")
    assert reasons[str(messy / "broken.flac")] == "a broken link"
    assert all(reasons[str(messy / n)].startswith("not audio that soundfile reads")
               for n in ("readme.txt", "random.wav", "zero.wav"))
    with pytest.raises(UserError, match=f"^no audio in {messy / 'sub'}: no files$"):
        (messy / "sub" / "good.wav").unlink()
        find_inputs([str(messy / "sub")])
    with pytest.raises(UserError, match="^no audio in .*: 5 files, none of them audio"):
        find_inputs([str(messy)])


@pytest.mark.parametrize("out", ["rec/separated", "rec"])
def test_a_second_run_over_a_folder_holding_its_outputs_separates_only_the_recordings(tmp_path, out):
    """`separate.py rec --out_dir rec/separated` (or `--out_dir rec`) run again: the first run's
    outputs in the folder are not taken for recordings (no a_s1_s1.wav), one line says so."""
    (tmp_path / "rec").mkdir()
    sf.write(tmp_path / "rec" / "a.wav", np.zeros(100, np.float32), 8000)
    for name in ("a_s1.wav", "a_s2.wav", "a_spectrograms.png"):  # the first run's
        (tmp_path / out / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / out / name, np.zeros(100, np.float32), 8000, format="WAV")
    (tmp_path / out / "listen.html").write_text("<p>the first run's page</p>")
    (tmp_path / out / "notes_s1.wav.txt").write_text("the user's, not an output")
    found, skipped = find_inputs([str(tmp_path / "rec")], str(tmp_path / out))
    assert found == [tmp_path / "rec" / "a.wav"]
    assert skipped[0] == (f"{tmp_path / out}: 4 earlier outputs of separate.py (*_sN.wav, *_spectrograms.png, "
                          f"listen.html) "
                          f"found in the folder to separate: not separated again")
    assert [line.split(": ")[0] for line in skipped[1:]] == [str(tmp_path / out / "notes_s1.wav.txt")]
    named, _ = find_inputs([str(tmp_path / out / "a_s1.wav")], str(tmp_path / out))
    assert named == [tmp_path / out / "a_s1.wav"]  # named on the command line: the user means it


def run_separate(*argv):
    return subprocess.run([sys.executable, str(ROOT / "separate.py"), *argv], capture_output=True, text=True)


def test_command_line_separates_good_files_and_reports_bad_ones(prepared, librimix, tmp_path):
    """A folder with a good file, the same name in a subfolder, a file shorter than the encoder's
    kernel and a file that is not audio: three separated, one skipped with its name, nothing
    overwritten, and a second run neither overwrites the outputs nor a user's file beside them."""
    ckpt = tmp_path / "tiny.ckpt"
    ms.save_checkpoint(build_network(load_config(TINY, verbose=False).group("model")), str(ckpt))
    mixture = sorted((librimix / "test" / "mix_clean").glob("*.wav"))[0]
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    for target in (inputs / "good.wav", inputs / "sub" / "good.wav"):
        target.write_bytes(mixture.read_bytes())
    sf.write(inputs / "tiny.wav", np.full(10, 0.1, np.float32), 8000, subtype="PCM_16")
    (inputs / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["--ckpt_path", str(ckpt), *TINY, str(inputs), "--out_dir", str(out), "--plot"]
    result = run_separate(*argv)
    assert result.returncode == 0, result.stderr
    assert f"skipped: {inputs / 'broken.wav'}: not audio that soundfile reads" in result.stdout
    assert "separated 3 files into " + str(out) + "; skipped 1" in result.stdout
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert made == ["good_s1.wav", "good_s2.wav", "good_spectrograms.png", "listen.html", "notes.txt", "sub",
                    "sub/good_s1.wav", "sub/good_s2.wav", "sub/good_spectrograms.png",
                    "tiny_s1.wav", "tiny_s2.wav", "tiny_spectrograms.png"]
    for k in (1, 2):
        assert sf.info(str(out / f"good_s{k}.wav")).frames == sf.info(str(mixture)).frames
        assert sf.info(str(out / f"tiny_s{k}.wav")).frames == 10

    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = run_separate(*argv)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"error: {out / 'good_s1.wav'} exists (6 of the outputs do): pass --overwrite to replace "
        f"them, or choose another --out_dir"]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert "separated 3 files into " + str(out) + "; skipped 1" in run_separate(*argv, "--overwrite").stdout
    assert (out / "notes.txt").read_text() == "mine"


def test_onnx_model_separates_a_recording_as_its_checkpoint_does(librimix, tmp_path):
    """separate.py --onnx (onnxruntime) writes the files the checkpoint writes with windows of the
    ONNX model's length, to the 16-bit output's last bit, up to the last window (which the fixed-length
    model sees zero-padded, and the checkpoint at its own length)."""
    ckpt = tmp_path / "tiny.ckpt"
    ms.set_seed(6)
    ms.save_checkpoint(build_network(load_config(TINY, verbose=False).group("model")), str(ckpt))
    run_in_process("export.py", "--ckpt_path", ckpt, *TINY, "--file_format", "ONNX", "--export_length", "1.5",
                   "--file_name", tmp_path / "tiny", "--device_target", "CPU")
    mixture = sorted((librimix / "test" / "mix_clean").glob("*.wav"))[0]
    assert sf.info(str(mixture)).duration > 3  # several windows, stitched
    run_in_process("separate.py", "--onnx", tmp_path / "tiny.onnx", mixture, "--out_dir", tmp_path / "onnx")
    run_in_process("separate.py", "--ckpt_path", ckpt, *TINY, "--window", "1.5", mixture, "--out_dir",
                   tmp_path / "ckpt")
    for k in (1, 2):
        a, b = (sf.read(str(tmp_path / d / f"{mixture.stem}_s{k}.wav"), dtype="int16")[0] for d in ("onnx", "ckpt"))
        last_window = (len(a) - 3000 - 1) // 9000 * 9000  # windows of 12000 samples, hop 9000
        assert len(a) == len(b) == sf.info(str(mixture)).frames
        assert np.abs(a[:last_window].astype(int) - b[:last_window]).max() <= 1


def test_a_messy_folder_separates_its_audio_and_names_the_rest(tmp_path):
    """The command line on a folder holding a .raw of random bytes and a text file beside a good wav in a
    subfolder (issue 30): the wav is separated, the others named once each, exit status 0."""
    messy = tmp_path / "messy"
    (messy / "sub").mkdir(parents=True)
    sf.write(messy / "sub" / "good.wav", np.full(4000, 0.1, np.float32), 8000, subtype="PCM_16")
    (messy / "notes.raw").write_bytes(np.random.default_rng(0).bytes(4000))
    (messy / "readme.txt").write_text("read me")
    out = tmp_path / "out"
    result = run_separate("--ckpt_path", str(ROOT / "scripts" / "selftest" / "tiny.ckpt"), str(messy), "--out_dir",
                          str(out))
    assert result.returncode == 0, result.stderr[-500:]
    skipped = [line for line in result.stdout.splitlines() if line.startswith("skipped: ")]
    assert skipped == [f"skipped: {messy / 'notes.raw'}: headerless RAW samples (no rate, no format): convert it "
                       f"to wav or flac",
                       f"skipped: {messy / 'readme.txt'}: not audio that soundfile reads (Error opening "
                       f"'{messy / 'readme.txt'}': Format not recognised.)"]
    assert result.stdout.splitlines()[-2:] == [f"separated 1 file into {out}; skipped 2 (the 'skipped:' lines above)",
                                               f"listen to them: {out / 'listen.html'} (open it in a browser)"]
    assert sorted(p.name for p in out.iterdir()) == ["good_s1.wav", "good_s2.wav", "listen.html"]
