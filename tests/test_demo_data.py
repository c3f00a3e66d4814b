"""The demo LibriMix generator: layout, exact mixtures, loudness, determinism, disjoint speakers."""
import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf

from demo_data import SPLITS, make_librimix


def rows(root, split, mix_type="mix_clean"):
    with open(root / "metadata" / f"mixture_{split}_{mix_type}.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_layout_and_exact_sums(librimix):
    assert librimix.parts[-3:] == ("Libri2Mix", "wav8k", "min")
    for split, count in zip(SPLITS, (8, 3, 3)):
        clean, both = rows(librimix, split), rows(librimix, split, "mix_both")
        assert len(clean) == len(both) == count
        assert list(clean[0]) == ["mixture_ID", "mixture_path", "source_1_path", "source_2_path", "length"]
        assert list(both[0]) == ["mixture_ID", "mixture_path", "source_1_path", "source_2_path",
                                 "noise_path", "length"]
        for row, row_both in zip(clean, both):
            mixture, rate = sf.read(row["mixture_path"], dtype="int16")
            assert rate == 8000 and sf.info(row["mixture_path"]).subtype == "PCM_16"
            sources = [sf.read(row[f"source_{k}_path"], dtype="int16")[0].astype(np.int32) for k in (1, 2)]
            noise = sf.read(row_both["noise_path"], dtype="int16")[0].astype(np.int32)
            assert len(mixture) == int(row["length"]) >= 3 * 8000
            np.testing.assert_array_equal(mixture, sources[0] + sources[1])
            np.testing.assert_array_equal(sf.read(row_both["mixture_path"], dtype="int16")[0],
                                          sources[0] + sources[1] + noise)
            assert np.abs(mixture).max() / 32768 <= 0.9 + 1e-4


def test_sources_are_at_librimix_loudness(librimix):
    meter = pyloudnorm.Meter(8000)
    for row in rows(librimix, "train-100"):
        for k in (1, 2):
            loudness = meter.integrated_loudness(sf.read(row[f"source_{k}_path"])[0])
            # in [-33, -25] LUFS unless scaled down afterwards to keep the mixture below 0.9
            assert loudness <= -25 + 0.2
        mixture = sf.read(row["mixture_path"])[0]
        sources = [sf.read(row[f"source_{k}_path"])[0] for k in (1, 2)]
        if np.abs(mixture).max() < 0.899:
            assert all(meter.integrated_loudness(s) >= -33 - 0.2 for s in sources)


def test_test_speakers_never_train(librimix):
    def speakers(split):
        return {part.split("-")[0] for row in rows(librimix, split) for part in row["mixture_ID"].split("_")}
    assert speakers("test").isdisjoint(speakers("train-100"))
    assert speakers("dev").isdisjoint(speakers("train-100"))
    assert len(speakers("train-100")) >= 4


def digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.wav")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_deterministic_for_a_seed(tmp_path):
    a = make_librimix(tmp_path / "a", counts=(2, 1, 1), seed=5, speakers_per_split=(3, 2, 2))
    b = make_librimix(tmp_path / "b", counts=(2, 1, 1), seed=5, speakers_per_split=(3, 2, 2))
    c = make_librimix(tmp_path / "c", counts=(2, 1, 1), seed=6, speakers_per_split=(3, 2, 2))
    assert digest(a) == digest(b) != digest(c)


SYNTHESIZE_EVERY_VOICE = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from demo_data import ACCENTS, VARIANTS, synthesize
for k, variant in enumerate(VARIANTS):
    audio = synthesize("a quiet garden near the river", f"{ACCENTS[k % len(ACCENTS)]}+{variant}", 160, 45, 55)
    print(variant, hashlib.md5(audio.tobytes()).hexdigest())
"""


def test_every_voice_sounds_the_same_in_another_process():
    """A set made twice, in two runs, is the same: no voice may vary between processes."""
    root = str(Path(__file__).resolve().parents[1])
    runs = [subprocess.run([sys.executable, "-c", SYNTHESIZE_EVERY_VOICE, root], capture_output=True, text=True,
                           check=True, timeout=300).stdout.splitlines() for _ in range(2)]
    assert len(runs[0]) > 20 and runs[0] == runs[1]


def test_three_talkers(tmp_path):
    root = make_librimix(tmp_path, num_spks=3, counts=(1, 1, 1), speakers_per_split=(3, 3, 3))
    row = rows(root, "test")[0]
    assert root.parts[-3] == "Libri3Mix" and "source_3_path" in row
    total = sum(sf.read(row[f"source_{k}_path"], dtype="int16")[0].astype(np.int32) for k in (1, 2, 3))
    np.testing.assert_array_equal(sf.read(row["mixture_path"], dtype="int16")[0], total)


def test_replaces_only_a_set_it_made(tmp_path):
    """Run again into the same folder, the generator replaces its own set; a LibriMix folder of the
    user's (no marker) there is refused and left as it was."""
    import pytest
    from errors import UserError
    first = make_librimix(tmp_path / "ours", counts=(1, 1, 1), seed=1, speakers_per_split=(2, 2, 2))
    (first / "stale.txt").write_text("from the first run")
    again = make_librimix(tmp_path / "ours", counts=(1, 1, 1), seed=2, speakers_per_split=(2, 2, 2))
    assert again == first and not (again / "stale.txt").exists()
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["Libri2Mix"]

    real = tmp_path / "corpora" / "Libri2Mix" / "wav8k" / "min"
    real.mkdir(parents=True)
    (real / "mine.wav").write_bytes(b"real data")
    with pytest.raises(UserError, match="exists and was not made by make_demo_data.py"):
        make_librimix(tmp_path / "corpora", counts=(1, 1, 1), seed=1, speakers_per_split=(2, 2, 2))
    assert (real / "mine.wav").read_bytes() == b"real data"
    assert sorted(p.name for p in (tmp_path / "corpora").iterdir()) == ["Libri2Mix"]
