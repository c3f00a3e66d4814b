"""selftest.py, the first-run check for a new host, as CI runs it on CPU, and on damaged golden files."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from config import UserError
from helpers import script_main

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "scripts" / "selftest"
selftest_main = script_main("selftest.py")


@pytest.fixture
def golden_copy(tmp_path):
    copy = tmp_path / "golden"
    shutil.copytree(GOLDEN, copy)
    return copy


def test_selftest_passes_on_cpu_through_the_launcher():
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run_selftest.sh"), "CPU"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "self-test on CPU: PASS"
    rows = {line.split()[0]: line.split()[1] for line in lines[2:-1]}
    assert rows == {"train": "PASS", "golden": "PASS", "export": "PASS", "mindir": "PASS", "lite_app": "SKIP"}


def mindir_contents(path):
    """(the input's shape, {parameter name (as in the checkpoint): array}) of a MindIR file."""
    from mindspore.train import mind_ir_pb2
    model = mind_ir_pb2.ModelProto()
    model.ParseFromString(path.read_bytes())
    assert all(p.data_type == mind_ir_pb2.TensorProto.FLOAT for p in model.graph.parameter)
    return list(model.graph.input[0].tensor[0].dims), {p.name.split(":")[-1]: np.frombuffer(
        p.raw_data, np.float32).reshape(p.dims) for p in model.graph.parameter}


def test_the_shipped_golden_files_are_what_make_golden_writes(tmp_path):
    """What --make_golden computes today is what is shipped: the golden files still describe the model,
    and the shipped ascend form is the shipped checkpoint's (its operators, its weights, the mixture's
    length)."""
    import mindir
    from checkpoint import load_checkpoint
    selftest_main(["--make_golden", "--device_target", "CPU", "--golden_dir", str(tmp_path)])
    with np.load(GOLDEN / "golden.npz") as shipped, np.load(tmp_path / "golden.npz") as fresh:
        np.testing.assert_array_equal(shipped["mixture"], fresh["mixture"])
        np.testing.assert_allclose(shipped["output"], fresh["output"], rtol=0, atol=1e-6)
        length = shipped["mixture"].shape[1]
    shipped = GOLDEN / "tiny_ascend.mindir"
    assert mindir.lstm_form(shipped) == "ascend"
    assert mindir.operators(shipped) == mindir.operators(tmp_path / "tiny_ascend.mindir")
    mindir.check_operators(shipped, "ascend")
    checkpoint = {name: value.asnumpy() for name, value in load_checkpoint(GOLDEN / "tiny.ckpt").items()
                  if hasattr(value, "asnumpy")}
    shape, weights = mindir_contents(shipped)
    assert shape == [1, length] and weights.keys() == checkpoint.keys()
    for name, array in weights.items():
        np.testing.assert_array_equal(array, checkpoint[name], err_msg=name)


def test_a_wrong_golden_output_fails_the_comparisons(golden_copy, capsys):
    with np.load(golden_copy / "golden.npz") as golden:
        mixture, output = golden["mixture"], golden["output"]
    np.savez(golden_copy / "golden.npz", mixture=mixture, output=output * 1.001)  # 60 dB off
    with pytest.raises(UserError, match="^self-test on CPU failed: golden, mindir$"):
        selftest_main(["--golden_dir", str(golden_copy)])
    out = capsys.readouterr().out
    assert "60.0 dB SNR vs golden" in out and "FAIL" in out


def test_a_damaged_golden_file_is_named(golden_copy):
    data = bytearray((golden_copy / "golden.npz").read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    (golden_copy / "golden.npz").write_bytes(bytes(data))
    with pytest.raises(UserError) as err:
        selftest_main(["--golden_dir", str(golden_copy)])
    assert str(err.value).startswith(f"{golden_copy / 'golden.npz'}: damaged golden file")
    assert "git checkout -- scripts/selftest" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["golden.npz", "tiny.ckpt"])
def test_a_missing_golden_file_is_named(golden_copy, name):
    (golden_copy / name).unlink()
    with pytest.raises(UserError, match=f"^{golden_copy / name}: no such golden file: restore scripts/selftest/"):
        selftest_main(["--golden_dir", str(golden_copy)])


def test_a_device_error_is_a_fail_row_and_the_other_checks_still_run(monkeypatch, capsys):
    """On new hardware a check fails with MindSpore's own error (a missing kernel, a compile): the
    table says so in its row and goes on."""
    import device_check

    def no_kernel(cfg, target):
        raise RuntimeError("For 'DynamicRNN', the kernel is not found on this device.\n(C++ stack ...)")
    monkeypatch.setattr(device_check, "check_training", no_kernel)
    with pytest.raises(UserError, match="^self-test on CPU failed: train$"):
        selftest_main([])
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:-1]}
    assert rows["train"].split()[1] == "FAIL"
    assert "For 'DynamicRNN', the kernel is not found on this device." in rows["train"]
    assert [rows[name].split()[1] for name in ("golden", "export", "mindir")] == ["PASS", "PASS", "PASS"]


# A stand-in for the MindSpore Lite app on an Ascend card, which cannot be built here: it runs the shipped
# tiny checkpoint in the ascend form with DynamicRNN emulated in float16 on CPU (layers.DynamicRNNOnCPU),
# as a card would run tiny_ascend.mindir, and writes the app's result file. It records its arguments.
CARD_STAND_IN = '''#!{python}
import json, sys
sys.path = [p for p in sys.path if "no_mindspore" not in p]
sys.path.insert(0, {root!r})
open({calls!r}, "a").write(json.dumps(sys.argv[1:]) + "\\n")
{body}
'''
RUNS_ON_THE_CARD = '''
from pathlib import Path
import mindspore as ms, numpy as np
from checkpoint import checkpoint_settings, network_from_checkpoint
from config import load_config
from device_check import TINY
from layers import emulate_dynamic_rnn
ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
model, inputs, results = sys.argv[1:4]
net, _ = network_from_checkpoint(Path(model).with_name("tiny.ckpt"),
                                 checkpoint_settings(load_config([], verbose=False).updated(**TINY)), target="Ascend")
net.set_train(False)
emulate_dynamic_rnn(net)
mixture = np.fromfile(Path(inputs) / "000000.bin", np.float32)[None]
Path(results).mkdir()
net(ms.Tensor(mixture)).asnumpy().tofile(Path(results) / "000000_0.bin")
'''
FAILS_TO_BUILD = '''
print("loading the model", flush=True)
sys.exit("error: building model.mindir for Ascend device 0 failed (Model::Build: DynamicRNN unsupported)")
'''


def stand_in_app(folder, body):
    """The stand-in app in folder: (its path, the file of its calls' arguments)."""
    import sys
    app, calls = folder / "dprnn_310", folder / "calls.jsonl"
    app.write_text(CARD_STAND_IN.format(python=sys.executable, root=str(ROOT), calls=str(calls), body=body))
    app.chmod(0o755)
    return app, calls


def host_self_test(tmp_path, *argv):
    """bash scripts/run_infer_310.sh --selftest argv..., with MindSpore unimportable (a 310 host has none)
    and its own temporary folder: (result, what that folder holds afterwards)."""
    import os
    import sys
    blocker = tmp_path / "no_mindspore" / "mindspore"
    blocker.mkdir(parents=True, exist_ok=True)
    (blocker / "__init__.py").write_text("raise ImportError('no MindSpore on a 310 inference host')\n")
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(blocker.parent), TMPDIR=str(temp))
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run_infer_310.sh"), "--selftest", *argv],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    return result, sorted(p.name for p in temp.iterdir())


def test_the_310_host_self_test_passes_on_a_card_that_computes_the_model(tmp_path):
    """run_infer_310.sh --selftest, without MindSpore, runs the shipped ascend-form MindIR through the app
    with --device ascend on the device given and passes on float16 LSTMs (74 dB against golden)."""
    app, calls = stand_in_app(tmp_path, RUNS_ON_THE_CARD)
    result, left = host_self_test(tmp_path, "3", "--app", str(app))
    assert result.returncode == 0, result.stderr
    passed = re.fullmatch(r"310 self-test on Ascend device 3: PASS: ([\d.]+) dB SNR vs golden \(tolerance >= 30 dB\)\n",
                          result.stdout)
    assert passed and 40 < float(passed[1]) < 120, result.stdout
    (arguments,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert arguments[0] == str(GOLDEN / "tiny_ascend.mindir")
    assert arguments[3:] == ["--device", "ascend", "--device_id", "3"]
    assert left == []


def test_the_310_host_self_test_fails_with_the_apps_first_error_line(tmp_path):
    app, _ = stand_in_app(tmp_path, FAILS_TO_BUILD)
    result, left = host_self_test(tmp_path, "0", "--app", str(app))
    assert result.returncode == 1
    assert result.stdout == (f"310 self-test on Ascend device 0: FAIL: {app} failed (exit status 1): error: building "
                             f"model.mindir for Ascend device 0 failed (Model::Build: DynamicRNN unsupported)\n")
    assert result.stderr == "" and left == []


def test_the_310_host_self_test_fails_on_a_wrong_output(tmp_path):
    """An app whose output is not the model's (the signal shifted by 50 ms) fails, with the SNR."""
    app, _ = stand_in_app(tmp_path, RUNS_ON_THE_CARD.replace("net(ms.Tensor(mixture)).asnumpy()",
                                                             "np.roll(net(ms.Tensor(mixture)).asnumpy(), 400, -1)"))
    result, _ = host_self_test(tmp_path, "0", "--app", str(app))
    assert result.returncode == 1
    assert re.fullmatch(r"310 self-test on Ascend device 0: FAIL: -?[\d.]+ dB SNR vs golden \(tolerance >= 30 dB\)\n",
                        result.stdout), result.stdout


def broken_golden_dir(golden_copy, damage):
    if damage == "golden.npz damaged":
        data = bytearray((golden_copy / "golden.npz").read_bytes())
        data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
        (golden_copy / "golden.npz").write_bytes(bytes(data))
    elif damage == "cpu form":
        shutil.copy(GOLDEN / "tiny_ascend.mindir", golden_copy / "tiny_ascend.mindir")
        data = (golden_copy / "tiny_ascend.mindir").read_bytes().replace(b"DynamicRNN", b"LSTM")
        (golden_copy / "tiny_ascend.mindir").write_bytes(data)
    else:
        (golden_copy / damage.split()[0]).unlink()


@pytest.mark.parametrize("damage, expected", [
    ("no app", "{app}: the MindSpore Lite app is not built: set LITE_HOME to MindSpore Lite's folder and run "
               "bash ascend310_infer/build.sh"),
    ("tiny_ascend.mindir missing", "{golden}/tiny_ascend.mindir: no such MindIR file: restore scripts/selftest/"),
    ("cpu form", "{golden}/tiny_ascend.mindir is the cpu form (LSTM nodes), not the ascend form the card runs: "),
    ("golden.npz damaged", "{golden}/golden.npz: damaged golden file (BadZipFile): restore scripts/selftest/"),
    ("golden.npz missing", "{golden}/golden.npz: no such golden file: restore scripts/selftest/"),
])
def test_what_the_310_host_self_test_lacks_is_one_line(tmp_path, golden_copy, damage, expected):
    app, calls = stand_in_app(tmp_path, RUNS_ON_THE_CARD)
    if damage == "no app":
        app = tmp_path / "out" / "dprnn_310"
    else:
        broken_golden_dir(golden_copy, damage)
    before = sorted(p.name for p in golden_copy.iterdir())
    result, left = host_self_test(tmp_path, "0", "--app", str(app), "--golden_dir", str(golden_copy))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: " + expected.format(app=app, golden=golden_copy)), result.stderr
    assert result.stderr.count("\n") == 1 and not calls.exists() and left == []
    assert sorted(p.name for p in golden_copy.iterdir()) == before
