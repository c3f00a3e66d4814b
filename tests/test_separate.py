"""separate.py: windowed long-file separation, talker order across windows, formats, bad files."""
import subprocess
import sys
import tracemalloc
from pathlib import Path

import mindspore as ms
import numpy as np
import soundfile as sf

from config import load_config
from network_define import build_network
from separate import WindowedSeparation, find_inputs, separate_file

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--in_channels", "16", "--out_channels", "16", "--hidden_channels", "16", "--bn_channels", "16",
        "--num_layers", "1", "--K", "20", "--kernel_size", "16"]


class ShuffledOracle:
    """A stand-in separator: the talker is in a random one of two outputs, silence in the other."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def __call__(self, mixture):
        outputs = np.stack([mixture, np.zeros_like(mixture)])
        return outputs[::-1].copy() if self.rng.random() < 0.5 else outputs


def separate_with(separator, path, out_dir, window=1.0, rate=8000):
    windowed = WindowedSeparation(separator, rate, window)
    return separate_file(Path(path), out_dir, windowed, 2, lambda it: it)


def test_windows_are_stitched_in_a_consistent_talker_order(tmp_path):
    rng = np.random.default_rng(1)
    speech = (rng.standard_normal(8000 * 20) * np.sin(np.arange(8000 * 20) / 900) ** 2).astype(np.float32) * 0.3
    sf.write(tmp_path / "long.wav", speech, 8000, subtype="FLOAT")
    outputs = separate_with(ShuffledOracle(), tmp_path / "long.wav", tmp_path, window=1.3)
    first, second = (sf.read(p, dtype="float32")[0] for p in outputs)
    assert len(first) == len(second) == len(speech)
    talker, silence = (first, second) if np.abs(first).sum() > np.abs(second).sum() else (second, first)
    np.testing.assert_allclose(talker, speech, atol=1e-6)
    assert np.abs(silence).max() < 1e-6


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
    for name in ("a/x.wav", "a/b/y.flac", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found = find_inputs([str(tmp_path / "a")])
    assert [p.name for p in found] == ["y.flac", "x.wav"]


def test_command_line_separates_good_files_and_reports_bad_ones(prepared, librimix, tmp_path):
    ckpt = tmp_path / "tiny.ckpt"
    ms.save_checkpoint(build_network(load_config(TINY, verbose=False)), str(ckpt))
    mixture = sorted((librimix / "test" / "mix_clean").glob("*.wav"))[0]
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    result = subprocess.run([sys.executable, str(ROOT / "separate.py"), "--ckpt_path", str(ckpt), *TINY,
                             str(mixture), str(tmp_path / "broken.wav"), "--out_dir", str(tmp_path / "out"),
                             "--plot"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "skipped: " in result.stdout + result.stderr and "broken.wav: unreadable audio" in result.stdout + result.stderr
    assert "separated 1 of 2 files" in result.stdout
    made = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert made == [f"{mixture.stem}_s1.wav", f"{mixture.stem}_s2.wav", f"{mixture.stem}_spectrograms.png"]
    for k in (1, 2):
        assert sf.info(str(tmp_path / "out" / f"{mixture.stem}_s{k}.wav")).frames == sf.info(str(mixture)).frames
