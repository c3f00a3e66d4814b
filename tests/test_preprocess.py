"""preprocess.py: both layouts end to end, re-rooting, resampling, and every kind of bad input."""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import mindspore.dataset as ds
import numpy as np
import pytest
import soundfile as sf

from config import UserError, load_config
from data import RECORD_COLUMNS, mindrecord_file, read_index
from librimix import preprocess

ROOT = Path(__file__).resolve().parents[1]


def config(*argv):
    return load_config(["--shard_num", "2", *argv], verbose=False)


def records(data_dir, name):
    """{mixture_ID: (mixture int16, sources int16 [C, T])} read back from MindRecord."""
    dataset = ds.MindDataset(mindrecord_file(data_dir, name), columns_list=RECORD_COLUMNS, shuffle=False)
    out = {}
    for mixture, sources, length, mixture_id in dataset.create_tuple_iterator(output_numpy=True, num_epochs=1):
        out[str(mixture_id)] = (np.frombuffer(mixture, "<i2"),
                                np.frombuffer(sources, "<i2").reshape(-1, int(length)))
    return out


def csv_rows(root, split, mix_type="mix_clean"):
    with open(root / "metadata" / f"mixture_{split}_{mix_type}.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_matches_wavs(data_dir, name, expected):
    """expected: {mixture_ID: (mixture path, [source paths])}; every sample must be equal."""
    got = records(data_dir, name)
    assert set(got) == set(expected)
    for mixture_id, (mix_path, source_paths) in expected.items():
        mixture, sources = got[mixture_id]
        np.testing.assert_array_equal(mixture, sf.read(mix_path, dtype="int16")[0])
        for k, path in enumerate(source_paths):
            np.testing.assert_array_equal(sources[k], sf.read(path, dtype="int16")[0])


def librimix_expected(root, split, mix_type="mix_clean"):
    return {r["mixture_ID"]: (r["mixture_path"], [r["source_1_path"], r["source_2_path"]])
            for r in csv_rows(root, split, mix_type)}


def test_librimix_layout_end_to_end(prepared, librimix):
    cfg, data_dir = prepared
    for split, role, name in (("train-100", "tr", cfg.train_name), ("dev", "cv", cfg.valid_name),
                              ("test", "tt", cfg.test_name)):
        expected = librimix_expected(librimix, split)
        assert_matches_wavs(data_dir, name, expected)
        manifests = {k: json.loads((data_dir / role / f"{k}.json").read_text()) for k in ("mix", "s1", "s2")}
        by_id = {r["mixture_ID"]: r for r in csv_rows(librimix, split)}
        assert [Path(p).stem for p, _ in manifests["mix"]] == sorted(by_id)
        for k, column in (("mix", "mixture_path"), ("s1", "source_1_path"), ("s2", "source_2_path")):
            for (path, length), mixture_id in zip(manifests[k], sorted(by_id)):
                assert Path(path) == Path(by_id[mixture_id][column]).resolve()
                assert length == int(by_id[mixture_id]["length"]) == sf.info(path).frames
    assert sorted(p.name for p in data_dir.glob("train.mindrecord*")) == [
        "train.mindrecord0", "train.mindrecord0.db", "train.mindrecord1", "train.mindrecord1.db"]


def test_mix_both_and_moved_folder(librimix, tmp_path):
    """The CSVs' absolute paths point to where the set was made; a moved copy is re-rooted."""
    moved = tmp_path / "elsewhere" / "min"
    shutil.copytree(librimix, moved)
    cfg = config("--mix_type", "mix_both")
    summary = preprocess(moved, tmp_path / "out", cfg)
    expected = {i: (str(moved / "test" / "mix_both" / f"{i}.wav"),
                    [str(moved / "test" / s / f"{i}.wav") for s in ("s1", "s2")])
                for i in librimix_expected(librimix, "test", "mix_both")}
    assert_matches_wavs(tmp_path / "out", cfg.test_name, expected)
    assert summary["tt"]["utterances"] == 3 and summary["tr"]["dropped"] == 0


def make_zoo_layout(librimix, root):
    for split, role in (("train-100", "tr"), ("dev", "cv"), ("test", "tt")):
        for r in csv_rows(librimix, split):
            for sub, column in (("mix", "mixture_path"), ("s1", "source_1_path"), ("s2", "source_2_path")):
                (root / role / sub).mkdir(parents=True, exist_ok=True)
                shutil.copy(r[column], root / role / sub / f"{r['mixture_ID']}.wav")
    return root


def test_zoo_layout_end_to_end(librimix, tmp_path):
    zoo = make_zoo_layout(librimix, tmp_path / "zoo")
    cfg = config()
    preprocess(zoo, tmp_path / "out", cfg)
    expected = {p.stem: (str(p), [str(zoo / "cv" / s / p.name) for s in ("s1", "s2")])
                for p in (zoo / "cv" / "mix").glob("*.wav")}
    assert_matches_wavs(tmp_path / "out", cfg.valid_name, expected)
    assert len(json.loads((tmp_path / "out" / "tr" / "s2.json").read_text())) == 8


def test_other_sample_rate_is_resampled(librimix, tmp_path):
    zoo = make_zoo_layout(librimix, tmp_path / "zoo")
    victim = sorted((zoo / "tt" / "mix").glob("*.wav"))[0]
    for sub in ("mix", "s1", "s2"):
        path = zoo / "tt" / sub / victim.name
        audio, _ = sf.read(path)
        sf.write(path, np.repeat(audio, 2), 16000, subtype="FLOAT")
    summary = preprocess(zoo, tmp_path / "out", config())
    assert summary["tt"]["resampled_rates"] == [16000]
    mixture, sources = records(tmp_path / "out", "test.mindrecord")[victim.stem]
    original = sf.read(librimix / "test" / "mix_clean" / victim.name, dtype="int16")[0]
    assert len(mixture) == len(original) and sources.shape == (2, len(original))
    # upsampled by repetition then resampled back: close to the original, not bit-exact
    assert np.corrcoef(mixture, original)[0, 1] > 0.95


def corrupt(kind, path):
    audio, rate = sf.read(path)
    if kind == "stereo":
        sf.write(path, np.stack([audio, audio], 1), rate)
    elif kind == "garbage":
        path.write_bytes(b"RIFF not really a wav file" * 10)
    elif kind == "empty":
        sf.write(path, np.zeros(0), rate)
    elif kind == "short":
        sf.write(path, audio[:-10], rate, subtype="PCM_16")
    elif kind == "missing":
        path.unlink()


@pytest.mark.parametrize("kind, message", [("stereo", "2 channels"), ("garbage", "unreadable audio"),
                                           ("empty", "no samples"), ("short", "samples, but its mixture"),
                                           ("missing", "no such file")])
def test_bad_files_stop_with_the_file_named_and_nothing_half_written(librimix, tmp_path, kind, message):
    zoo = make_zoo_layout(librimix, tmp_path / "zoo")
    victim = sorted((zoo / "cv" / "s2").glob("*.wav"))[1]
    corrupt(kind, victim)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier work")
    with pytest.raises(UserError, match=message) as err:
        preprocess(zoo, out, config())
    assert str(victim) in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    summary = preprocess(zoo, out, config("--skip_bad"))
    assert summary["cv"]["dropped"] == 1 and summary["cv"]["utterances"] == 2
    assert victim.stem not in records(out, "valid.mindrecord")
    assert sorted(p.name for p in (out / ".preprocess").iterdir())[0] == "current"
    assert len(list((out / ".preprocess").iterdir())) == 2  # no work folder left


@pytest.mark.parametrize("setup, message", [
    (lambda root: root / "nothere", "no such folder"),
    (lambda root: root, "neither a LibriMix folder"),
])
def test_bad_input_folders(tmp_path, setup, message):
    with pytest.raises(UserError, match=message):
        preprocess(setup(tmp_path), tmp_path / "out", config())


def test_unknown_split_names_the_csvs_there(librimix, tmp_path):
    with pytest.raises(UserError, match="mixture_train-360_mix_clean.csv: no such file.*mixture_dev"):
        preprocess(librimix, tmp_path / "out", config("--train_split", "train-360"))


def test_command_line_error_is_one_line_and_non_zero(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "preprocess.py"), "--in_dir", str(tmp_path / "x"),
                             "--out_dir", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: --in_dir {tmp_path / 'x'}: no such folder"


def ids(data_dir, name):
    return sorted(read_index(mindrecord_file(data_dir, name))[1])


def test_only_its_own_outputs_are_replaced(librimix, tmp_path):
    """A user's train/ folder of checkpoints, tracks/, cv_notes.txt beside the outputs survive
    every run; a user's file where an output would go stops the run before it writes anything."""
    out = tmp_path / "out"
    for folder in ("train", "tracks", "tt_old"):
        (out / folder).mkdir(parents=True)
        (out / folder / "keep.txt").write_text(folder)
    (out / "cv_notes.txt").write_text("notes")
    for shard_num in ("2", "1", "2"):
        preprocess(librimix, out, config("--shard_num", shard_num))
        for folder in ("train", "tracks", "tt_old"):
            assert (out / folder / "keep.txt").read_text() == folder
        assert (out / "cv_notes.txt").read_text() == "notes"
    assert ids(out, "test.mindrecord") == sorted(librimix_expected(librimix, "test"))
    assert sorted(p.name for p in (out / ".preprocess").iterdir())[0] == "current"
    assert len(list((out / ".preprocess").iterdir())) == 2  # the link and the one set

    mine = tmp_path / "mine"
    (mine / "tr").mkdir(parents=True)
    (mine / "tr" / "mix.json").write_text("my own")
    with pytest.raises(UserError, match=f"{mine / 'tr'} exists and was not written by"):
        preprocess(librimix, mine, config())
    assert sorted(p.name for p in mine.rglob("*")) == ["mix.json", "tr"]


# Runs preprocess once for each number read from stdin, each time in a process of its own that
# SIGKILLs itself at that step; prints each run's exit status. MindSpore is imported once, by this
# process while it has one thread, and each run is a fork of it: a real process killed for real,
# without loading MindSpore again (about 4 s a run).
KILL_AT_STEP = """
import os, signal, sys, traceback
sys.path.insert(0, sys.argv[1])
from config import load_config
from librimix import preprocess
assert len(os.listdir("/proc/self/task")) == 1, "fork needs a single-threaded process"
for line in sys.stdin:
    kill_at, steps = int(line), []
    if (pid := os.fork()) == 0:
        os.dup2(2, 1)  # what preprocess prints goes to stderr: stdout carries the exit statuses
        def step(name):
            steps.append(name)
            if len(steps) == kill_at:
                print(f"killed after step {name}", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        try:
            preprocess(sys.argv[2], sys.argv[3], load_config(["--shard_num", "2"], verbose=False), step)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


def test_a_kill_at_any_step_leaves_the_old_set_or_the_new_one(librimix, tmp_path):
    """Killed between any two steps of putting the outputs in place, out_dir holds the complete
    old set or the complete new one, never a mix or neither; the next run cleans up after it."""
    out = tmp_path / "out"
    old_cfg = config("--shard_num", "1", "--valid_split", "test")  # other names and other contents
    old = {"valid": sorted(librimix_expected(librimix, "test")), "shards": ["valid.mindrecord"]}
    new = {"valid": sorted(librimix_expected(librimix, "dev")), "shards": ["valid.mindrecord0"]}
    seen = set()
    log = tmp_path / "runs.log"  # a file, not a pipe: nothing the runs print can fill up and block them
    with log.open("w") as errors, subprocess.Popen(
            [sys.executable, "-c", KILL_AT_STEP, str(ROOT), str(librimix), str(out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True) as runs:
        for kill_at in range(1, 40):
            shutil.rmtree(out, ignore_errors=True)
            preprocess(librimix, out, old_cfg)
            runs.stdin.write(f"{kill_at}\n")
            runs.stdin.flush()
            status = runs.stdout.readline()
            assert status, log.read_text()[-2000:]
            returncode = int(status)
            if returncode == 0:
                break
            assert returncode == -9, (kill_at, returncode)
            valid = ids(out, "valid.mindrecord")
            state = "old" if valid == old["valid"] else "new"
            assert valid == {"old": old, "new": new}[state]["valid"], kill_at
            manifest = json.loads((out / "cv" / "mix.json").read_text())
            assert sorted(Path(p).stem for p, _ in manifest) == valid
            assert (out / {"old": old, "new": new}[state]["shards"][0]).is_file()
            seen.add(state)
            preprocess(librimix, out, config())
            assert ids(out, "valid.mindrecord") == new["valid"]
            assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".preprocess"]
            assert len(list((out / ".preprocess").iterdir())) == 2
            assert all(p.exists() for p in out.iterdir())  # no dangling links
        runs.stdin.close()
        assert runs.wait() == 0, log.read_text()[-2000:]
    assert returncode == 0 and seen == {"old", "new"} and kill_at > 10


def damaged_csv(librimix, tmp_path, damage):
    """A copy of the demo set's metadata (its audio listed by absolute paths) with the test CSV's
    lines changed; returns (root, the test CSV's path)."""
    root = tmp_path / "damaged"
    shutil.copytree(librimix / "metadata", root / "metadata")
    csv_path = root / "metadata" / "mixture_test_mix_clean.csv"
    csv_path.write_bytes(damage(csv_path.read_text().splitlines(), csv_path))
    return root, csv_path


def replace_cell(line, column, value):
    cells = line.split(",")
    cells[column] = value
    return ",".join(cells)


@pytest.mark.parametrize("damage, expected", [
    (lambda lines, _: "\n".join(lines[:2] + [replace_cell(lines[2], 3, "")] + lines[3:]).encode(),
     "{csv}, row 3, column source_2_path: empty: fill it in or remove the row"),
    (lambda lines, _: "\n".join(lines[:2] + [replace_cell(lines[2], 1, " ")] + lines[3:]).encode(),
     "{csv}, row 3, column mixture_path: empty: fill it in or remove the row"),
    (lambda lines, _: "\n".join(lines[:3] + [",".join(lines[3].split(",")[:3])] + lines[4:]).encode(),
     "{csv}, row 4: 3 cells, but the header has 5 columns: complete the row or remove it"),
    (lambda lines, _: "\n".join(lines[:3] + [replace_cell(lines[3], 0, lines[1].split(",")[0])]).encode(),
     "{csv}, row 4, column mixture_ID: {first_id} is also row 2: mixture IDs must be unique"),
    (lambda lines, _: ("\n".join(lines[:2]) + "\n").encode() + b"caf\xe9" + ("\n".join(lines[2:])).encode(),
     "{csv}, row 3: byte 0xe9 is not UTF-8: save the CSV as UTF-8"),
    (lambda lines, _: "\n".join([lines[0].replace("mixture_path", "mix_path")] + lines[1:]).encode(),
     "{csv}: expected LibriMix columns mixture_ID, mixture_path, source_1_path, ... and at least one row "
     "(row 1, the header, has no mixture_path column)"),
], ids=["empty-source", "blank-mixture", "few-cells", "duplicate-id", "not-utf8", "header"])
def test_csv_errors_name_the_csv_the_row_and_the_column(librimix, tmp_path, damage, expected):
    from librimix import librimix_utterances
    root, csv_path = damaged_csv(librimix, tmp_path, damage)
    first_id = csv_rows(librimix, "test")[0]["mixture_ID"]
    with pytest.raises(UserError) as err:
        librimix_utterances(root, "test", "mix_clean", 2)
    assert str(err.value) == expected.format(csv=csv_path, first_id=first_id)


def test_a_missing_file_names_the_csv_row_that_lists_it(librimix, tmp_path):
    """Through preprocess.py's library as a user runs it: the row is named in the one-line error."""
    def point_row_3_elsewhere(lines, _):
        return "\n".join(lines[:2] + [replace_cell(lines[2], 2, "/nowhere/s1.wav")] + lines[3:]).encode()
    root, csv_path = damaged_csv(librimix, tmp_path, point_row_3_elsewhere)
    with pytest.raises(UserError) as err:
        preprocess(root, tmp_path / "out", config())
    assert str(err.value).startswith(f"/nowhere/s1.wav: no such file, listed in {csv_path}, row 3: correct the path")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
