"""scripts/*.sh in the model zoo's argument forms (DEVICE_ID first, as its README gives them), on
CPU with device id 0: each does what the zoo's did and keeps its output in a log in its output folder."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TINY_TRAINING

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_TRAINING + ["--device_target", "CPU"]


def launch(script, *args):
    result = subprocess.run(["bash", str(ROOT / "scripts" / script), *map(str, args)], capture_output=True,
                            text=True, timeout=900, env=dict(os.environ, PYTHON=sys.executable))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    """run_standalone_train.sh DEVICE_ID DATA_DIR: (data_dir, output_dir, its stdout)."""
    _, data_dir = prepared
    out = tmp_path_factory.mktemp("zoo") / "train"
    (out.parent / "notes.txt").write_text("mine")
    stdout = launch("run_standalone_train.sh", 0, data_dir, "--output_dir", out, "--max_steps", 4, *TINY)
    return data_dir, out, stdout


def test_standalone_train_takes_device_id_and_data_dir_and_logs_to_train_log(trained):
    data_dir, out, stdout = trained
    settings = (out / "config.yaml").read_text()
    assert f"data_dir: {data_dir}" in settings and "device_id: 0" in settings
    assert sorted(p.name for p in out.glob("dprnn-e*-s*.ckpt")) == ["dprnn-e000-s00000004.ckpt"]
    log = (out / "train.log").read_text()
    fingerprint = next(line for line in stdout.splitlines() if "final weights" in line)
    assert fingerprint in log and "training on CPU" in log
    assert (out.parent / "notes.txt").read_text() == "mine"


def test_eval_takes_device_id_checkpoint_and_data_dir_and_logs_to_eval_log(trained, tmp_path):
    data_dir, out, _ = trained
    ckpt = out / "dprnn-e000-s00000004.ckpt"
    stdout = launch("run_eval.sh", 0, ckpt, data_dir, "--results_dir", tmp_path / "results")
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["utterances"] == 3 and summary["protocol"] == "whole utterances"
    expected = f"Average SISNR improvement: {summary['si_snri']:.2f}"
    assert expected in stdout and expected in (tmp_path / "results" / "eval.log").read_text()
    assert f"Average SDR improvement: {summary['sdri']:.2f}" in stdout


def test_infer_310_takes_mindir_test_path_and_need_preprocess_and_logs_to_infer_log(trained, tmp_path):
    data_dir, out, _ = trained
    subprocess.run([sys.executable, str(ROOT / "export.py"), "--config_path", str(out / "config.yaml"),
                    "--ckpt_path", str(out / "dprnn-e000-s00000004.ckpt"), "--file_name", str(tmp_path / "dprnn")],
                   check=True, capture_output=True)
    shutil.copy(out / "config.yaml", tmp_path / "config.yaml")  # the model settings, beside the MindIR
    infer_dir = tmp_path / "infer"
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run_infer_310.sh"), str(tmp_path / "dprnn.mindir"),
                             str(data_dir), "y"], capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, PYTHON=sys.executable, INFER_DIR=str(infer_dir)))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((infer_dir / "results" / "summary.json").read_text())
    log = (infer_dir / "infer.log").read_text()
    assert f"Average SISNR improvement: {summary['si_snri']:.2f}" in result.stdout
    assert f"Average SISNR improvement: {summary['si_snri']:.2f}" in log
    assert "The total run time is" in log and "000000.bin:" in log  # the per-file times
    assert summary["protocol"] == "4-s pieces" and summary["utterances"] == 3
