"""First-run self-test for a new host (Ascend, GPU or CPU): does this project train, compute and
export correctly on this device? Run it before a long training or a deployment.

    python selftest.py [--device_target Ascend] [--device_id 0]     # or: bash scripts/run_selftest.sh

1. train: a few compiled training steps of the shipped tiny model on a built-in two-talker batch;
   every loss finite, the last below the first.
2. golden: one forward pass of the shipped tiny checkpoint (scripts/selftest/tiny.ckpt) on the
   shipped mixture, against the output computed on CPU (scripts/selftest/golden.npz), as an SNR in dB
   with a tolerance per device (Ascend's LSTMs run in float16).
3. export: the checkpoint exported in this device's form, every operator checked (mindir.py).
4. MindIR: the exported file run with MindSpore on this device, against the golden output.
5. Lite app: where ascend310_infer/out/dprnn_310 is built, the same MindIR built and run by it.

Prints a PASS/FAIL/SKIP table and exits 1 if anything failed. `--make_golden` (CPU only) writes the
golden files anew from a freshly initialised tiny model: only after a deliberate model change.
"""

from config import load_config

import mindspore as ms

from device_check import TINY, make_golden, self_test
from errors import ArgumentParser, UserError, run_main
from lite_app import GOLDEN_DIR


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--golden_dir", default=str(GOLDEN_DIR), help="tiny.ckpt and golden.npz")
    parser.add_argument("--make_golden", action="store_true", help="write the golden files anew (CPU)")
    cfg = load_config(argv, parser, verbose=False, offers=("device",)).updated(**TINY)
    if cfg.make_golden:
        make_golden(cfg, cfg.golden_dir)
        return
    target, rows = self_test(cfg, cfg.golden_dir)
    widths = [max(len(r[i]) for r in rows + [("check", "result", "measured", "tolerance")]) for i in range(4)]
    print(f"self-test on {target} (MindSpore {ms.__version__})")
    for r in [("check", "result", "measured", "tolerance")] + rows:
        print("  ".join(text.ljust(width) for text, width in zip(r, widths)).rstrip())
    failed = [r[0] for r in rows if r[1] == "FAIL"]
    if failed:
        raise UserError(f"self-test on {target} failed: {', '.join(failed)}")
    print(f"self-test on {target}: PASS")


if __name__ == "__main__":
    run_main(main)
