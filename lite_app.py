"""The MindSpore Lite app (ascend310_infer/out/dprnn_310) run from Python with numpy only, as an
Ascend 310 inference host has it: MindSpore Lite and the app, no MindSpore.

- run_app: one input through the app, its output back;
- the golden files (scripts/selftest/): the tiny checkpoint's output for a built-in mixture, computed
  on CPU, and that checkpoint exported in the ascend form (tiny_ascend.mindir), so a 310 host can
  check the app without exporting anything;
- host_self_test: that mixture through the app on the card, against the golden output
  (scripts/run_infer_310.sh --selftest).
"""
import os
import subprocess
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from errors import UserError

HERE = Path(__file__).resolve().parent
APP = HERE / "ascend310_infer" / "out" / "dprnn_310"
GOLDEN_DIR = HERE / "scripts" / "selftest"
ASCEND_MINDIR = "tiny_ascend.mindir"
RESTORE = "restore scripts/selftest/ from the repository (git checkout -- scripts/selftest)"
# least SNR (dB) of an output against the CPU golden one. The golden output is this graph's on a CPU
# (identical here); another machine's kernels may sum in another order (CPU, and GPU's cuDNN more so);
# Ascend runs the LSTMs in float16 (DynamicRNN: 74 dB for the tiny model when emulated on CPU,
# tests/test_export_targets.py) and may run other operators in float16 too
TOLERANCE_DB = {"CPU": 80.0, "GPU": 60.0, "Ascend": 30.0}


class AppFailed(UserError):
    """The app ran and failed: its own first error line."""


def app_env():
    """The app's environment: Lite's runtime libraries on LD_LIBRARY_PATH when LITE_HOME is set. Only
    the app's: that folder ships its own libmindspore_core.so and glog, which a Python process's
    MindSpore plugins could load in place of their own."""
    env = dict(os.environ)
    lite_home = env.get("LITE_HOME")
    if lite_home:
        libs = [f"{lite_home}/runtime/lib", f"{lite_home}/runtime/third_party/dnnl", f"{lite_home}/tools/converter/lib"]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [env["LD_LIBRARY_PATH"]] * bool(env.get("LD_LIBRARY_PATH")))
    return env


def check_app(app=APP):
    if not Path(app).is_file() or not os.access(app, os.X_OK):
        raise UserError(f"{app}: the MindSpore Lite app is not built: set LITE_HOME to MindSpore Lite's "
                        f"folder and run bash ascend310_infer/build.sh")


def run_app(model, mixture, device, device_id, work, app=APP):
    """The app on one input, mixture [1, T] float32, with model on `device` (ascend or cpu): its
    output, float32 [C * T]. A UserError with the app's own first error line when it fails, and
    when its output is not a whole number of T-sample signals."""
    check_app(app)
    (work / "input").mkdir(parents=True)
    mixture.astype(np.float32).tofile(work / "input" / "000000.bin")
    result = subprocess.run([str(app), str(model), str(work / "input"), str(work / "result"), "--device", device,
                             "--device_id", str(device_id)], capture_output=True, text=True, env=app_env())
    if result.returncode:
        lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        first_error = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
        raise AppFailed(f"{app} failed (exit status {result.returncode}): {first_error or 'no message'}")
    output_file = work / "result" / "000000_0.bin"
    if not output_file.is_file():
        raise AppFailed(f"{app} wrote no {output_file.name}")
    output = np.fromfile(output_file, np.float32)
    if len(output) == 0 or len(output) % mixture.size:
        raise AppFailed(f"{app} wrote {len(output)} values for a {mixture.size}-sample input, not a whole number "
                        f"of signals")
    return output


def read_golden(golden_dir=GOLDEN_DIR):
    """(mixture [1, T], output [1, C, T]) of golden_dir/golden.npz; a UserError naming the file when
    it is missing or damaged."""
    path = Path(golden_dir) / "golden.npz"
    if not path.is_file():
        raise UserError(f"{path}: no such golden file: {RESTORE}")
    try:
        with np.load(path) as golden:
            mixture, output = golden["mixture"], golden["output"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise UserError(f"{path}: damaged golden file ({type(err).__name__}): {RESTORE}") from None
    if mixture.ndim != 2 or output.shape[::2] != mixture.shape or not np.isfinite(output).all():
        raise UserError(f"{path}: damaged golden file (shapes {mixture.shape}, {output.shape}): {RESTORE}")
    return mixture.astype(np.float32), output


def snr_db(reference, estimate):
    error = np.sum((reference.astype(np.float64) - estimate) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / error))


def compare(output, golden, target):
    """(passed, what was measured, the tolerance) of an output against the golden one."""
    measured = snr_db(golden, output)
    shown = "identical to golden" if measured == float("inf") else f"{measured:.1f} dB SNR vs golden"
    return measured >= TOLERANCE_DB[target], shown, f">= {TOLERANCE_DB[target]:g} dB"


def check_ascend_form(path):
    """A UserError unless the file at path is a MindIR of the ascend form: its LSTMs are DynamicRNN
    nodes (mindir.check_form reads the graph with MindSpore; the node names are plain bytes in the file)."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no such MindIR file: {RESTORE}")
    data = Path(path).read_bytes()
    if b"DynamicRNN" not in data:
        form = "the cpu form (LSTM nodes)" if b"LSTM" in data else "not a MindIR of this model"
        raise UserError(f"{path} is {form}, not the ascend form the card runs: {RESTORE}, or make it with "
                        f"python export.py --ckpt_path scripts/selftest/tiny.ckpt --export_target ascend "
                        f"--export_length 0.5 --file_name scripts/selftest/tiny_ascend")


def host_self_test(device_id, golden_dir=GOLDEN_DIR, app=APP):
    """The golden mixture through `app --device ascend` with the shipped ascend-form MindIR: (passed,
    what was measured or the app's first error line, the tolerance). A UserError when something it
    needs is missing or damaged; its work folder is removed whatever happens."""
    check_app(app)
    mixture, golden = read_golden(golden_dir)
    model = Path(golden_dir) / ASCEND_MINDIR
    check_ascend_form(model)
    with tempfile.TemporaryDirectory(prefix="dprnn_selftest_310_") as work:
        try:
            output = run_app(model, mixture, "ascend", device_id, Path(work), app)
        except AppFailed as failed:
            return False, str(failed), ""
    if output.size != golden.size:
        return False, f"{output.size // mixture.size} output signals, golden has {golden.shape[1]}", ""
    return compare(output.reshape(golden.shape), golden, "Ascend")
