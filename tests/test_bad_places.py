"""Every entry point against the places a hurried user with a messy disk gives it: a read-only output
folder, a full disk, a file it may not read, names with spaces, unicode and a leading dash; and the
launchers in scripts/ on bad input.

A failure is one `error:` line and a non-zero exit; the output folder (with a file of the user's in
it) hashes the same before and after, and nothing is left in the working folder. The read-only
folder and the full disk are real: a read-only bind mount and a full tmpfs where the tests run as
root (here and in CI: root ignores chmod), chmod and a patched flush elsewhere (tests/helpers.py).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import soundfile as sf

from checkpoint import build_network
from config import load_config
from errors import run_main
from helpers import TINY_TRAINING, full_disk, read_only, script_main, tree, unreadable, write_310_inputs
from mindir import export_network

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_TRAINING + ["--export_length", "1", "--device_target", "CPU"]
WEIRD = "-ü dir & x"  # a space, unicode, a leading dash and a shell character in one folder name


@pytest.fixture(scope="module")
def inputs(prepared, librimix, tmp_path_factory):
    """What the entry points read: a tiny checkpoint and its cpu-form MindIR, a 310 folder with
    results, a mixture; {name: path}."""
    import mindspore as ms
    _, data_dir = prepared
    base = tmp_path_factory.mktemp("places")
    cfg = load_config(["--data_dir", str(data_dir), *TINY], verbose=False)
    net = build_network(cfg.group("model"))
    ms.save_checkpoint(net, str(base / "tiny.ckpt"))
    export_network(net, str(base / "tiny"), "MINDIR", cfg.samples("export_length"), "cpu")
    infer = base / "infer"
    write_310_inputs(cfg, infer)
    (infer / "result_Files").mkdir()
    for piece in sorted((infer / "input").glob("*.bin")):  # each talker's estimate: the mixture itself
        mixture = np.fromfile(piece, np.float32)
        np.stack([mixture, mixture])[None].tofile(infer / "result_Files" / f"{piece.stem}_0.bin")
    mixture = sorted((librimix / "test" / "mix_clean").glob("*.wav"))[0]
    (base / "page.html").write_text("<!doctype html><title>a page</title><p>" + "a page " * 2000)
    return dict(data=data_dir, librimix=librimix, ckpt=base / "tiny.ckpt", mindir=base / "tiny.mindir",
                infer=infer, mixture=mixture, page=base / "page.html")


# every entry point that writes, and its arguments with {out} the output location; bench.py writes
# nothing but its table on stdout
WRITERS = [
    ("preprocess.py", ["--in_dir", "{librimix}", "--out_dir", "{out}"]),
    ("train.py", ["--data_dir", "{data}", "--output_dir", "{out}", "--max_steps", "2"]),
    ("evaluate.py", ["--data_dir", "{data}", "--ckpt_path", "{ckpt}", "--results_dir", "{out}"]),
    ("export.py", ["--ckpt_path", "{ckpt}", "--file_name", "{out}/model"]),
    ("separate.py", ["--ckpt_path", "{ckpt}", "{mixture}", "--out_dir", "{out}", "--plot"]),
    ("preprocess_310.py", ["--data_dir", "{data}", "--infer_dir", "{out}"]),
    ("postprocess.py", ["--infer_dir", "{infer}", "--results_dir", "{out}"]),
    ("ascend310_infer/infer_cpu.py", ["{mindir}", "{infer}/input", "{out}"]),
    ("scripts/make_demo_data.py", ["--out_dir", "{out}", "--n_train", "1", "--n_dev", "1", "--n_test", "1"]),
    ("selftest.py", ["--make_golden", "--golden_dir", "{out}"]),
    ("scripts/screenshot_report.py", ["{page}", "{out}/page.png"]),
]
TAKES_THE_CONFIG = ("preprocess.py", "train.py", "evaluate.py", "export.py", "separate.py", "preprocess_310.py",
                    "postprocess.py", "selftest.py")


def run_script(script, argv, fill, work):
    """The script's main() as its command line runs it, in `work`: the SystemExit message."""
    argv = (TINY if script in TAKES_THE_CONFIG else []) + [a.format(**fill) for a in argv]
    # as a new process starts: without the kernel fusion an earlier test's setup_device() turned on
    # in this one (CI once saw its compiler leave dsa_transfrom.log here, under infer_cpu.py, which
    # never turns it on)
    ms.set_context(enable_graph_kernel=False)
    os.chdir(work)
    main = script_main(script)
    with pytest.raises(SystemExit) as stopped:
        run_main(lambda: main(argv))
    message = stopped.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    return message


@pytest.fixture
def out(tmp_path, monkeypatch):
    """An output folder holding an earlier run's file and one of the user's, and an empty working folder."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "mine.txt").write_text("the user's")
    (folder / "summary.json").write_text("an earlier run's")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path)
    return folder


@pytest.mark.parametrize("script, argv", WRITERS, ids=[w[0] for w in WRITERS])
def test_a_read_only_output_folder_is_one_line_and_changes_nothing(inputs, out, script, argv):
    work = out.parent / "cwd"
    with read_only(out):
        before = tree(out)
        message = run_script(script, argv, dict(inputs, out=out), work)
        assert tree(out) == before
    assert str(out) in message and ("Read-only file system" in message or "Permission denied" in message), message
    assert not list(work.iterdir())


@pytest.mark.parametrize("script, argv", WRITERS, ids=[w[0] for w in WRITERS])
def test_a_full_disk_is_one_line_and_changes_nothing(inputs, out, script, argv):
    """The output folder is a file system with no free byte (the user's files in it): whatever the
    entry point writes first fails, and it says so in one line naming the folder or the file."""
    work = out.parent / "cwd"
    with full_disk(out):
        before = tree(out)
        message = run_script(script, argv, dict(inputs, out=out), work)
        assert tree(out) == before
    assert str(out) in message and ("disk full" in message or "No space left" in message
                                    or "No free disk" in message), message
    assert not list(work.iterdir())


def weird_copy(source, parent):
    target = parent / WEIRD / source.name
    shutil.copytree(source, target, symlinks=False)
    return target


def test_names_with_spaces_unicode_and_a_leading_dash_work_end_to_end(inputs, tmp_path, monkeypatch):
    """LibriMix, the data, the checkpoint, the inputs and every output under `-ü dir & x`: the same
    results as under plain names (the separated audio bit for bit, the scores exactly)."""
    monkeypatch.chdir(tmp_path)
    librimix = weird_copy(inputs["librimix"], tmp_path)
    plain, odd = tmp_path / "plain", tmp_path / WEIRD
    for folder, source in ((plain, inputs["librimix"]), (odd, librimix)):
        script_main("preprocess.py")(TINY + ["--in_dir", str(source), "--out_dir", str(folder / "data")])
        script_main("evaluate.py")(TINY + ["--data_dir", str(folder / "data"), "--ckpt_path", str(inputs["ckpt"]),
                                           "--results_dir", str(folder / "-results ü")])
    assert (json.loads((odd / "-results ü" / "summary.json").read_text())["si_snri"]
            == json.loads((plain / "-results ü" / "summary.json").read_text())["si_snri"])
    mixture = odd / "-mix ü & x.wav"
    shutil.copy(inputs["mixture"], mixture)
    shutil.copy(inputs["ckpt"], odd / "-tiny ü.ckpt")
    monkeypatch.chdir(odd)  # as a user types it: a relative name that starts with a dash, after ./
    script_main("separate.py")(TINY + ["--ckpt_path", "-tiny ü.ckpt", f"./{mixture.name}", "--out_dir", "-sep ü"])
    script_main("separate.py")(TINY + ["--ckpt_path", str(inputs["ckpt"]), str(inputs["mixture"]),
                                       "--out_dir", str(plain / "sep")])
    for k in (1, 2):
        ours = sf.read(odd / "-sep ü" / f"-mix ü & x_s{k}.wav", dtype="int16")[0]
        assert np.array_equal(ours, sf.read(plain / "sep" / f"{inputs['mixture'].stem}_s{k}.wav", dtype="int16")[0])


@pytest.mark.parametrize("script, argv, names", [
    ("preprocess.py", ["--in_dir", f"{{base}}/{WEIRD}/nowhere", "--out_dir", "{out}"], f"{{base}}/{WEIRD}/nowhere"),
    ("train.py", ["--data_dir", f"{{base}}/{WEIRD}", "--output_dir", "{out}"], f"{{base}}/{WEIRD}"),
    ("evaluate.py", ["--ckpt_path", f"{{base}}/{WEIRD}/x.ckpt", "--results_dir", "{out}"], f"{WEIRD}/x.ckpt"),
    ("export.py", ["--ckpt_path", f"{{base}}/{WEIRD}/x.ckpt", "--file_name", "{out}/m"], f"{WEIRD}/x.ckpt"),
    ("separate.py", ["--ckpt_path", "{ckpt}", f"{{base}}/{WEIRD}/-x ü.wav", "--out_dir", "{out}"],
     f"{WEIRD}/-x ü.wav: no such file or folder"),
    ("separate.py", ["--ckpt_path", "{ckpt}", "-x.wav", "--out_dir", "{out}"],
     "if -x.wav is a path, write it as ./-x.wav"),
    ("separate.py", ["--ckpt_path", "{ckpt}", "{mixture}", "--out_dir", "-o"], "if -o is a path, write it as ./-o"),
    ("preprocess_310.py", ["--data_dir", f"{{base}}/{WEIRD}", "--infer_dir", "{out}"], f"{{base}}/{WEIRD}"),
    ("postprocess.py", ["--infer_dir", f"{{base}}/{WEIRD}", "--results_dir", "{out}"], f"{{base}}/{WEIRD}"),
    ("ascend310_infer/infer_cpu.py", [f"{{base}}/{WEIRD}/m.mindir", "{infer}/input", "{out}"], f"{WEIRD}/m.mindir"),
    ("bench.py", ["infer", "--onnx", f"{{base}}/{WEIRD}/m.onnx"], f"{WEIRD}/m.onnx"),
])
def test_a_missing_path_with_an_odd_name_is_named_in_one_line(inputs, out, script, argv, names):
    base = out.parent
    (base / WEIRD).mkdir()  # exists, but holds nothing the script wants
    fill = dict(inputs, out=out, base=base)
    before = tree(out)
    message = run_script(script, argv, fill, base / "cwd")
    assert names.format(**fill) in message, message
    assert tree(out) == before and not list((base / "cwd").iterdir())


def python_without_root_rights():
    """The command prefix that runs Python as if the user were not root: root reads any file, so its
    right to (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH for the child)."""
    if os.geteuid() != 0:
        return [sys.executable]
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable]


def test_a_file_without_read_permission_is_skipped_and_the_others_separated(inputs, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(inputs["mixture"], folder / "a.wav")
    shutil.copy(inputs["mixture"], folder / "b_locked.wav")
    with unreadable(folder / "b_locked.wav"):
        result = subprocess.run(python_without_root_rights() + [
            str(ROOT / "separate.py"), *TINY, "--ckpt_path", str(inputs["ckpt"]), str(folder),
            "--out_dir", str(tmp_path / "sep")], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"skipped: {folder / 'b_locked.wav'}: no permission to read it" in result.stdout + result.stderr
    assert sorted(p.name for p in (tmp_path / "sep").iterdir()) == ["a_s1.wav", "a_s2.wav", "listen.html"]


@pytest.mark.parametrize("script, argv, locked, names", [
    ("evaluate.py", ["--ckpt_path", "{ckpt}", "--data_dir", "{data}", "--results_dir", "{out}"], "{ckpt}",
     "{ckpt}"),
    ("preprocess.py", ["--in_dir", "{librimix}", "--out_dir", "{out}"], "{mixture}", "{mixture}"),
])
def test_an_input_without_read_permission_is_one_line(inputs, tmp_path, script, argv, locked, names):
    fill = dict(inputs, out=tmp_path / "out")
    with unreadable(Path(locked.format(**fill))):
        result = subprocess.run(python_without_root_rights() + [str(ROOT / script), *TINY]
                                + [a.format(**fill) for a in argv], capture_output=True, text=True,
                                cwd=tmp_path, timeout=600)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and last.startswith("error: ") and names.format(**fill) in last, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("script, argv, names", [
    ("run_standalone_train.sh", ["{base}/nowhere", "--output_dir", "{out}/run", *TINY], "{base}/nowhere"),
    ("run_standalone_train.sh", ["{data}", "--output_dir", "{out}/run", *TINY, "--segment", "0.001"],
     "segment 0.001 s is 8 samples"),
    ("run_distribute_train.sh", ["2", "maybe"], "error: expected DEVICE_NUM"),
    ("run_distribute_train.sh", ["1", "false", "none", "{base}/nowhere", "--output_dir", "{out}/run"],
     "{base}/nowhere"),
    ("run_eval.sh", ["{base}/none.ckpt", "{data}", "--results_dir", "{out}"], "{base}/none.ckpt"),
    ("run_eval.sh", ["{ckpt}", "{data}", "--results_dir", "{out}", "--eval_segment", "-1"], "eval_segment"),
    ("run_eval.sh", ["0", "{base}/none.ckpt", "{data}", "--results_dir", "{out}/new/deeper"], "{base}/none.ckpt"),
    ("run_infer_310.sh", ["{base}/none.mindir", "{data}", "y", "cpu"], "{base}/none.mindir"),
    ("run_infer_310.sh", ["{ckpt}", "{data}", "y", "cpu"], "{ckpt}"),
    ("run_selftest.sh", ["TPU"], "device_target"),
    ("run_demo.sh", ["--quik"], "unknown arguments '--quik'"),
])
def test_a_launcher_on_bad_input_is_one_line_and_leaves_no_log(inputs, out, script, argv, names):
    """The launchers keep logs in the output folder; a run that stops on bad input (having changed
    nothing else there) takes its log lines back and removes the folders it made for them."""
    base = out.parent
    fill = dict(inputs, out=out, base=base)
    before = tree(out, base / "cwd")
    env_infer = dict(os.environ, PYTHON=sys.executable, INFER_DIR=str(out / "infer"))
    result = subprocess.run(["bash", str(ROOT / "scripts" / script), *[a.format(**fill) for a in argv]],
                            capture_output=True, text=True, timeout=600, cwd=base / "cwd", env=env_infer)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0 and lines[-1].startswith("error: "), lines[-5:]
    assert names.format(**fill) in lines[-1], lines[-1]
    assert "Traceback" not in result.stderr
    assert tree(out, base / "cwd") == before
