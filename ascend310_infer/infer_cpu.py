"""The CPU twin of main.cc: runs the exported MindIR (its cpu form: export.py --export_target cpu) on
every input .bin on CPU and writes the same result files (result_dir/{name}_0.bin, float32
[1, C, L]), so the whole 310 path but the C++ binary runs on any machine. It runs the model with
MindSpore Lite's Python package (mindspore_lite, the runtime main.cc uses) when that is installed,
and with MindSpore otherwise.

    python ascend310_infer/infer_cpu.py dprnn.mindir infer_310/input infer_310/result_Files
"""
import importlib.util
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import device  # noqa: E402,F401  (after the path above; first: it sets MindSpore's environment)
from errors import UserError, reason_of, run_main  # noqa: E402
from fileio import atomic_path, check_output_dir, one_writer  # noqa: E402
from mindir import check_form  # noqa: E402
from separation import load_mindir  # noqa: E402

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402


def lite_runner(mindir):
    """[1, L] float32 -> [1, C, L] with MindSpore Lite's CPU backend."""
    import mindspore_lite as mslite
    context = mslite.Context()
    context.target = ["cpu"]
    model = mslite.Model()
    model.build_from_file(str(mindir), mslite.ModelType.MINDIR, context)
    inputs = model.get_inputs()

    def run(mixture):
        inputs[0].set_data_from_numpy(mixture)
        return model.predict(inputs)[0].get_data_to_numpy()
    return run


def mindspore_runner(mindir):
    """[1, L] float32 -> [1, C, L] with MindSpore on CPU."""
    ms.set_device("CPU")
    return load_mindir(mindir)


def load_runner(mindir):
    """The model as a function, and which runtime runs it."""
    lite = importlib.util.find_spec("mindspore_lite") is not None
    try:
        return (lite_runner if lite else mindspore_runner)(mindir), "MindSpore Lite" if lite else "MindSpore"
    except (RuntimeError, ValueError) as err:
        raise UserError(f"{mindir}: not a loadable MindIR ({reason_of(err)[:200]}): "
                        f"export it again with export.py") from None


def infer_folder(mindir, input_dir, result_dir):
    """Run every .bin of input_dir through the model; returns the number of files."""
    if not Path(mindir).is_file():
        raise UserError(f"{mindir}: no such MindIR file (make one with export.py)")
    inputs = sorted(Path(input_dir).glob("*.bin")) if Path(input_dir).is_dir() else None
    if not inputs:
        raise UserError(f"{input_dir}: no .bin inputs here (make them with preprocess_310.py)")
    result_dir = check_output_dir(result_dir, "RESULT_DIR")
    with one_writer(result_dir, "RESULT_DIR"):
        check_form(mindir, "cpu")  # here for the Lite runner too, which does not go through load_mindir
        run, runtime = load_runner(mindir)
        print(f"running {mindir} with {runtime} on CPU")
        started = time.perf_counter()
        for path in inputs:
            data = np.fromfile(path, np.float32)
            file_started = time.perf_counter()
            try:
                output = run(data.reshape(1, -1))
            except RuntimeError:
                raise UserError(f"{path}: the model does not take [1, {data.size}] inputs: preprocess with "
                                f"the --export_length the MindIR was exported with") from None
            with atomic_path(result_dir / f"{path.stem}_0.bin") as tmp:
                output.astype(np.float32).tofile(tmp)
            print(f"{path.name}: {(time.perf_counter() - file_started) * 1000:.1f} ms")
        print(f"The total run time is: {(time.perf_counter() - started) * 1000:.3f} ms")
    return len(inputs)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        raise UserError("usage: python ascend310_infer/infer_cpu.py MINDIR INPUT_DIR RESULT_DIR")
    infer_folder(*argv)


if __name__ == "__main__":
    run_main(main)
