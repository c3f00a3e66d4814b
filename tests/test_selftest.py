"""selftest.py, the first-run check for a new host, as CI runs it on CPU, and on damaged golden files."""
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


def test_the_shipped_golden_output_is_the_shipped_checkpoints_output(tmp_path):
    """What --make_golden computes today is what is shipped: the golden files still describe the model."""
    selftest_main(["--make_golden", "--device_target", "CPU", "--golden_dir", str(tmp_path)])
    with np.load(GOLDEN / "golden.npz") as shipped, np.load(tmp_path / "golden.npz") as fresh:
        np.testing.assert_array_equal(shipped["mixture"], fresh["mixture"])
        np.testing.assert_allclose(shipped["output"], fresh["output"], rtol=0, atol=1e-6)


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
