"""Every entry point over a table of bad inputs, as a user meets them on the command line.

Each case must end with exit status 1 and a last stderr line `error: ...` naming the file or the
key, with no traceback (nothing but that error leaves main()), and must change nothing and leave nothing behind: not in the output
locations, not in the inputs, not in the working folder (where MindSpore drops compile dumps).
"""
import csv
import json
import os
import shutil
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import soundfile as sf
from mindspore.mindrecord import FileWriter

from checkpoint import build_network
from config import load_config
from errors import run_main
from helpers import TINY_TRAINING, script_main, tree, write_310_inputs
from librimix import SCHEMA

pytestmark = pytest.mark.fast  # bash scripts/run_tests.sh --fast

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_TRAINING + ["--export_length", "1", "--device_target", "CPU"]


def rewrite_csv(source, target, change):
    with open(source, newline="") as f:
        rows = list(csv.DictReader(f))
    rows = [change(dict(row)) for row in rows]
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def base(prepared, librimix, tmp_path_factory):
    """Inputs of every kind, good and bad, shared by the cases (which must not change them)."""
    cfg, data_dir = prepared
    base = tmp_path_factory.mktemp("bad_input")
    (base / "a_file").write_text("I am a file, not a folder")
    tiny = load_config(TINY, verbose=False)
    ms.save_checkpoint(build_network(tiny.group("model")), str(base / "tiny.ckpt"))
    ms.save_checkpoint(build_network(load_config(TINY + ["--bn_channels", "24"], verbose=False).group("model")),
                       str(base / "other.ckpt"))
    (base / "junk.ckpt").write_bytes(b"not a checkpoint")
    (base / "junk.mindir").write_bytes(b"not a model")

    mixture = sorted((librimix / "test" / "mix_clean").glob("*.wav"))[0]
    nan_audio = sf.read(mixture, dtype="float32")[0]
    nan_audio[100] = np.nan
    sf.write(base / "nan.wav", nan_audio, 8000, subtype="FLOAT")

    metadata = librimix / "metadata"
    for name, change in {
        "no_id": lambda row: {k: v for k, v in row.items() if k != "mixture_ID"},
        "one_source": lambda row: {k: v for k, v in row.items() if k != "source_2_path"},
        "nan_source": lambda row: {**row, "source_1_path": str(base / "nan.wav")}
        if row["mixture_path"].endswith(mixture.name) else row,
    }.items():
        for csv_path in metadata.glob("mixture_*_mix_clean.csv"):
            edit = change if "test" in csv_path.name else (lambda row: row)
            rewrite_csv(csv_path, base / name / "metadata" / csv_path.name, edit)

    for kind in ("zero", "corrupt", "empty"):
        folder = base / f"{kind}_data"
        shutil.copytree(data_dir, folder, symlinks=True)
        for link in folder.glob("t*.mindrecord*"):
            link.unlink()
    (base / "zero_data" / "train.mindrecord").write_bytes(b"")
    good = (data_dir / "train.mindrecord0").read_bytes()
    (base / "corrupt_data" / "train.mindrecord").write_bytes(good[:len(good) // 3])
    writer = FileWriter(str(base / "empty_data" / "test.mindrecord"), shard_num=1)
    writer.add_schema(SCHEMA, "no utterances")
    writer.commit()

    infer = base / "infer"
    write_310_inputs(load_config(["--data_dir", str(data_dir), *TINY], verbose=False), infer)
    (infer / "result_Files").mkdir()
    for piece in json.loads((infer / "manifest.json").read_text())["pieces"]:
        np.full(2 * 8000, np.nan, np.float32).tofile(infer / "result_Files" / piece["bin"].replace(".bin", "_0.bin"))
    shutil.copytree(infer, base / "infer_no_key")
    manifest = json.loads((infer / "manifest.json").read_text())
    del manifest["pieces"][0]["offset"]
    (base / "infer_no_key" / "manifest.json").write_text(json.dumps(manifest))
    (base / "empty_folder").mkdir()
    (base / "users_infer" / "input").mkdir(parents=True)  # a folder of the user's that is named input/
    (base / "users_infer" / "input" / "keep.bin").write_bytes(b"the user's")
    earlier = base / "earlier_run"  # what a finished run leaves (its files stand for it: read by name only)
    earlier.mkdir()
    for name in ("best.ckpt", "dprnn-e002-s00000020.ckpt", "dprnn-e001-s00000010.ckpt"):
        shutil.copy(base / "tiny.ckpt", earlier / name)
    (earlier / "train_log.csv").write_text("epoch,train_si_snr\n1,3.5\n")
    (base / "corpora" / "Libri2Mix" / "wav8k").mkdir(parents=True)  # a real LibriMix, say
    return base, data_dir, mixture


# (entry point, arguments, what the error line must name); {base}, {data}, {out}, {mixture} are
# filled in per case; {out} is a fresh output location that must stay as it was (absent).
CASES = [
    ("preprocess.py", ["--in_dir", "{base}/nowhere", "--out_dir", "{out}"], "{base}/nowhere"),
    ("preprocess.py", ["--in_dir", "{librimix}", "--out_dir", "{base}/a_file/data"], "--out_dir"),
    ("preprocess.py", ["--in_dir", "{base}/no_id", "--out_dir", "{out}"], "mixture_test_mix_clean.csv"),
    ("preprocess.py", ["--in_dir", "{base}/one_source", "--out_dir", "{out}"], "mixture_test_mix_clean.csv"),
    ("preprocess.py", ["--in_dir", "{base}/nan_source", "--out_dir", "{out}"], "{base}/nan.wav"),
    ("preprocess.py", ["--in_dir", "{librimix}", "--out_dir", "{out}", "--shard_num", "0"], "shard_num"),
    ("train.py", ["--data_dir", "{data}", "--output_dir", "{base}/a_file/run"], "--output_dir"),
    ("train.py", ["--data_dir", "{base}/zero_data", "--output_dir", "{out}"], "zero_data/train.mindrecord"),
    ("train.py", ["--data_dir", "{base}/corrupt_data", "--output_dir", "{out}"], "corrupt_data/train.mindrecord"),
    ("train.py", ["--data_dir", "{data}", "--output_dir", "{out}", "--batch_size", "0"], "batch_size"),
    ("train.py", ["--data_dir", "{data}", "--output_dir", "{out}", "--lr", "nan"], "lr"),
    ("train.py", ["--data_dir", "{data}", "--output_dir", "{out}", "--lr", "-1"], "lr"),
    ("train.py", ["--data_dir", "{data}", "--output_dir", "{out}", "--segment", "0"], "segment"),
    ("train.py", ["--data_dir", "{data}", "--output_dir", "{out}", "--resume", "{base}/none.ckpt"], "{base}/none.ckpt"),
    ("train.py", ["--data_dir", "{data}", "--output_dir", "{base}/earlier_run", "--max_steps", "1"],
     "{base}/earlier_run holds an earlier training run (best.ckpt, train_log.csv, 2 checkpoints up to "
     "dprnn-e002-s00000020.ckpt): pass --resume auto to continue it, or choose another --output_dir"),
    ("train.py", ["--data_dir", "{data}", "--output_dir", "{out}", "--resume", "{base}/tiny.ckpt"], "{base}/tiny.ckpt"),
    ("evaluate.py", ["--data_dir", "{data}", "--ckpt_path", "{base}/tiny.ckpt", "--results_dir", "{base}/a_file/r"],
     "--results_dir"),
    ("evaluate.py", ["--data_dir", "{data}", "--ckpt_path", "{base}/tiny.ckpt", "--results_dir", "{out}",
                     "--eval_segment", "0.001"], "eval_segment"),
    ("evaluate.py", ["--data_dir", "{base}/empty_data", "--ckpt_path", "{base}/tiny.ckpt", "--results_dir", "{out}"],
     "empty_data/test.mindrecord"),
    ("evaluate.py", ["--data_dir", "{data}", "--ckpt_path", "{base}/other.ckpt", "--results_dir", "{out}"],
     "{base}/other.ckpt"),
    ("evaluate.py", ["--data_dir", "{data}", "--ckpt_path", "{base}/junk.ckpt", "--results_dir", "{out}"],
     "{base}/junk.ckpt"),
    ("evaluate.py", ["--data_dir", "{data}", "--ckpt_path", "{base}", "--results_dir", "{out}"],
     "{base}: a folder, not a checkpoint file: give one of its checkpoints"),
    ("separate.py", ["--ckpt_path", "{base}/junk.mindir", "{mixture}", "--out_dir", "{out}"],
     "{base}/junk.mindir: an exported model, not a checkpoint: give the .ckpt it was exported from"),
    ("export.py", ["--ckpt_path", "{base}/tiny.ckpt", "--file_name", "{base}/a_file/model"], "--file_name"),
    ("export.py", ["--ckpt_path", "{base}/tiny.ckpt", "--file_name", "{out}/model", "--export_length", "0.0001"],
     "export_length"),
    ("export.py", ["--ckpt_path", "{base}/none.ckpt", "--file_name", "{out}/model"], "{base}/none.ckpt"),
    ("separate.py", ["--ckpt_path", "{base}/tiny.ckpt", "{mixture}", "--out_dir", "{base}/a_file/sep"], "--out_dir"),
    ("separate.py", ["--ckpt_path", "{base}/tiny.ckpt", "{base}/nowhere.wav", "--out_dir", "{out}"],
     "{base}/nowhere.wav"),
    ("separate.py", ["--ckpt_path", "{base}/tiny.ckpt", "{base}/nan.wav", "--out_dir", "{out}"], "{base}/nan.wav"),
    ("separate.py", ["--ckpt_path", "{base}/tiny.ckpt", "{base}/empty_folder", "--out_dir", "{out}"],
     "{base}/empty_folder"),
    ("separate.py", ["--mindir", "{base}/none.mindir", "{mixture}", "--out_dir", "{out}"], "{base}/none.mindir"),
    ("separate.py", ["--onnx", "{base}/none.onnx", "{mixture}", "--out_dir", "{out}"], "{base}/none.onnx"),
    ("evaluate.py", ["--onnx", "{base}/tiny.ckpt", "--data_dir", "{data}", "--results_dir", "{out}"],
     "{base}/tiny.ckpt: not a loadable ONNX model"),
    ("separate.py", ["--ckpt_path", "{base}/tiny.ckpt", "{mixture}", "--out_dir", "{out}", "--window", "-1"],
     "window"),
    ("preprocess_310.py", ["--data_dir", "{data}", "--infer_dir", "{base}/a_file/infer"], "--infer_dir"),
    ("preprocess_310.py", ["--data_dir", "{base}/nowhere", "--infer_dir", "{out}"], "{base}/nowhere"),
    ("preprocess_310.py", ["--data_dir", "{data}", "--infer_dir", "{base}/users_infer"],
     "{base}/users_infer/input exists and was not written by preprocess_310.py"),
    ("postprocess.py", ["--infer_dir", "{base}/infer_no_key", "--results_dir", "{out}"],
     "{base}/infer_no_key/manifest.json"),
    ("postprocess.py", ["--infer_dir", "{base}/infer", "--results_dir", "{out}"], "{base}/infer/result_Files/"),
    ("postprocess.py", ["--infer_dir", "{base}/infer", "--results_dir", "{base}/a_file/r"], "--results_dir"),
    ("ascend310_infer/infer_cpu.py", ["{base}/junk.mindir", "{base}/infer/input", "{out}"], "{base}/junk.mindir"),
    ("ascend310_infer/infer_cpu.py", ["{base}/junk.mindir", "{base}/infer/input", "{base}/a_file/res"],
     "RESULT_DIR"),
    ("ascend310_infer/infer_cpu.py", ["{base}/junk.mindir", "{base}/empty_folder", "{out}"], "{base}/empty_folder"),
    ("scripts/make_demo_data.py", ["--out_dir", "{base}/a_file/demo"], "--out_dir"),
    ("scripts/make_demo_data.py", ["--out_dir", "{base}/corpora", "--n_train", "1", "--n_dev", "1", "--n_test", "1"],
     "{base}/corpora/Libri2Mix"),
    ("scripts/make_demo_data.py", ["--out_dir", "{out}", "--n_train", "0"], "--n_train"),
    ("evaluate.py", ["--results_dir", "{out}", "--report_only"], "{out}/summary.json"),
    ("scripts/screenshot_report.py", ["{base}/nowhere.html", "{out}/page.png"], "{base}/nowhere.html"),
    ("scripts/screenshot_report.py", ["{base}/tiny.ckpt", "{out}/page.png", "--width", "10"], "--width"),
]
CASES += [  # every length a script takes on its own command line: zero, negative, NaN, too short
    ("bench.py", ["train", "--seconds", "0"], "--seconds must be a finite number > 0, got 0"),
    ("bench.py", ["infer", "--seconds", "-2"], "--seconds must be a finite number > 0, got -2"),
    ("bench.py", ["infer", "--seconds", "0.001"], "--seconds 0.001 is 8 samples at 8000 Hz, shorter than the "
                                                  "model's kernel_size 16: the smallest valid --seconds is 0.002"),
    ("bench.py", ["stream", "--block_ms", "20", "nan"], "--block_ms must be a finite number > 0, got nan"),
    ("separate.py", ["--ckpt_path", "{base}/tiny.ckpt", "{mixture}", "--out_dir", "{out}", "--block_ms", "0"],
     "--block_ms must be a finite number > 0, got 0"),
    ("export.py", ["--ckpt_path", "{base}/tiny.ckpt", "--export_length", "-1", "--file_name", "{out}/m"],
     "export_length"),
    ("export.py", ["--ckpt_path", "{base}/tiny.ckpt", "--export_length", "0.001", "--file_name", "{out}/m"],
     "export_length 0.001 s is 8 samples at 8000 Hz, shorter than the model's kernel_size 16"),
    ("evaluate.py", ["--ckpt_path", "{base}/tiny.ckpt", "--data_dir", "{data}", "--results_dir", "{out}",
                     "--eval_segment", "-1"], "eval_segment"),
]
TAKES_THE_CONFIG = ("preprocess.py", "train.py", "evaluate.py", "export.py", "separate.py",
                    "preprocess_310.py", "postprocess.py", "bench.py")


def test_tree_sees_the_same_bytes_written_again_and_a_chmod(tmp_path):
    (tmp_path / "shard").write_bytes(b"records")
    before = tree(tmp_path)
    (tmp_path / "shard").write_bytes(b"records")
    rewritten = tree(tmp_path)
    (tmp_path / "shard").chmod(0o600)
    assert before != rewritten != tree(tmp_path)


@pytest.mark.parametrize("script, argv, names", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_exit_1_and_changes_nothing(base, librimix, tmp_path, monkeypatch, script,
                                                           argv, names):
    """In-process for speed, through the scripts' own main() and run_main(), which is what their
    command line runs: its SystemExit message is the stderr line (tests of each script's command
    line as a subprocess are in the scripts' own test files)."""
    base_dir, data_dir, mixture = base
    fill = dict(base=base_dir, data=data_dir, out=tmp_path / "out", mixture=mixture, librimix=librimix)
    argv = (TINY if script in TAKES_THE_CONFIG else []) + [a.format(**fill) for a in argv]
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    watched = (base_dir, data_dir, librimix, tmp_path)
    before = tree(*watched)
    main = script_main(script)
    with pytest.raises(SystemExit) as stopped:
        run_main(lambda: main(argv))
    message = stopped.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    assert names.format(**fill) in message, message
    assert tree(*watched) == before


@pytest.mark.parametrize("script, argv, setting", [
    ("export.py", ["--export_length", "0.001", "--file_name", "{out}/model"], "export_length 0.001 s is 8 samples"),
    ("evaluate.py", ["--eval_segment", "0.001", "--data_dir", "{data}", "--results_dir", "{out}"],
     "eval_segment 0.001 s is 8 samples"),
    ("separate.py", ["--window", "0.0015", "{mixture}", "--out_dir", "{out}"], "window 0.0015 s is 12 samples"),
])
def test_a_length_too_short_for_the_checkpoints_kernel_is_one_line(base, tmp_path, monkeypatch, script, argv,
                                                                   setting):
    """The config's kernel_size (2) allows these lengths; the checkpoint's own (16, from its model_args) does
    not. Refused once the checkpoint's settings apply, before any graph is compiled: no rank_0/ dump."""
    _, data_dir, mixture = base
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("mine")
    fill = dict(out=out, data=data_dir, mixture=mixture)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    main = script_main(script)
    with pytest.raises(SystemExit) as stopped:
        run_main(lambda: main(["--ckpt_path", str(ROOT / "scripts" / "selftest" / "tiny.ckpt"),
                               *[a.format(**fill) for a in argv]]))
    assert stopped.value.code.startswith(f"error: {setting} at 8000 Hz, shorter than the model's kernel_size 16: "
                                         f"the smallest valid ")
    assert stopped.value.code.endswith(" is 0.002 s") and "\n" not in stopped.value.code
    assert [p.name for p in out.iterdir()] == ["mine.txt"] and not list(work.iterdir())


@pytest.mark.parametrize("script, argv, full_at, old_files", [
    ("evaluate.py", ["--ckpt_path", "{base}/tiny.ckpt", "--data_dir", "{data}", "--results_dir", "{out}"],
     "summary.json", ["per_utterance.csv", "summary.json"]),
    ("separate.py", ["--ckpt_path", "{base}/tiny.ckpt", "{mixture}", "--out_dir", "{out}", "--overwrite"],
     "_s1.wav", ["{stem}_s1.wav", "{stem}_s2.wav"]),
    ("export.py", ["--ckpt_path", "{base}/tiny.ckpt", "--file_name", "{out}/model"], "model.mindir",
     ["model.mindir"]),
])
def test_a_full_disk_replaces_nothing(base, tmp_path, monkeypatch, script, argv, full_at, old_files):
    """The disk fills while the last of a run's files is flushed (simulated: the flush raises ENOSPC):
    one line, exit 1, and every earlier output as it was, the files written together included."""
    import errno
    import fileio
    _, data_dir, mixture = base
    out = tmp_path / "out"
    out.mkdir()
    fill = dict(base=base[0], data=data_dir, mixture=mixture, out=out, stem=Path(mixture).stem)
    for name in old_files + ["mine.txt"]:
        (out / name.format(**fill)).write_text("an earlier run's")
    real_fsync = fileio._fsync

    def fsync(path):  # the hidden file written for the target whose name ends with full_at
        if Path(path).name.split(f".{os.getpid()}.partial")[0].endswith(full_at):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(path)
    monkeypatch.setattr(fileio, "_fsync", fsync)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = tree(out)
    main = script_main(script)
    with pytest.raises(SystemExit) as stopped:
        run_main(lambda: main(TINY + [a.format(**fill) for a in argv]))
    message = stopped.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    assert "cannot write it (disk full); nothing was replaced" in message, message
    assert tree(out) == before and not list(work.iterdir())
