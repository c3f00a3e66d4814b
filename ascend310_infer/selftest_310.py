"""Self-test of an Ascend 310 inference host, which has MindSpore Lite and the built app but no
MindSpore: the shipped golden mixture through `ascend310_infer/out/dprnn_310 --device ascend` with
the shipped ascend-form MindIR (scripts/selftest/tiny_ascend.mindir), against the output computed
on CPU (scripts/selftest/golden.npz), at lite_app.TOLERANCE_DB["Ascend"]. Needs Python with numpy.

    bash scripts/run_infer_310.sh --selftest [DEVICE_ID]

Prints PASS, or FAIL with the measured SNR or the app's own first error line (exit status 1).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from errors import ArgumentParser, run_main  # noqa: E402  (after the path above)
from lite_app import APP, GOLDEN_DIR, host_self_test  # noqa: E402


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device_id", type=int, default=0, help="the Ascend device to run on")
    parser.add_argument("--app", default=str(APP), help="the built MindSpore Lite app")
    parser.add_argument("--golden_dir", default=str(GOLDEN_DIR), help="golden.npz and tiny_ascend.mindir")
    args = parser.parse_args(argv)
    passed, measured, tolerance = host_self_test(args.device_id, args.golden_dir, args.app)
    verdict = "PASS" if passed else "FAIL"
    print(f"310 self-test on Ascend device {args.device_id}: {verdict}: {measured}"
          f"{f' (tolerance {tolerance})' if tolerance else ''}", flush=True)
    if not passed:
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
