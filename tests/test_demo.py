"""The README's first command, the demo (scripts/run_demo.sh), end to end on its tiny set (--quick), as
a user starts it: in a folder of its own (DEMO_DIR), and started a second time while it runs."""
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import leftovers, mean_column

ROOT = Path(__file__).resolve().parents[1]


def test_a_second_demo_meanwhile_stops_in_one_line_and_the_first_finishes(tmp_path):
    """bash scripts/run_demo.sh --quick twice, half a second apart, into one DEMO_DIR: the whole demo
    once (its summary the files' figures), and one line from the other. A demo holds its folder from
    its first step, before any Python work, so the later one meets it held (tests/test_one_writer.py
    freezes the holder for the scripts, which take the folder only after loading MindSpore)."""
    demo = tmp_path / "demo"
    env = dict(os.environ, DEMO_DIR=str(demo), PYTHON=sys.executable)
    command = ["bash", str(ROOT / "scripts" / "run_demo.sh"), "--quick"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = {run: run.communicate(timeout=1200) for run in (first, second)}
    winner, loser = (first, second) if first.returncode == 0 else (second, first)
    out, err = outputs[winner]
    assert winner.returncode == 0, err[-3000:]
    assert loser.returncode == 1 and outputs[loser] == ("", f"error: {demo}: another run is writing into it (pid "
                                                           f"{winner.pid}: {shlex.join(command)}); wait for it to end\n")
    for results in ("results", "infer_310/results", "onnx_results"):  # evaluate.py, the 310 path, onnxruntime
        summary = json.loads((demo / results / "summary.json").read_text())
        assert f"SI-SNRi {summary['si_snri']:.2f} dB, SDRi {summary['sdri']:.2f} dB" in out
        assert summary["si_snri"] == pytest.approx(mean_column(demo / results / "per_utterance.csv", "SI-SNRi"))
    assert len(list((demo / "separated").glob("*_s[12].wav"))) == 2
    assert not leftovers(demo)
