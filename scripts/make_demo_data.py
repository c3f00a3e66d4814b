"""Make a small speech-separation set in exactly LibriMix's layout, offline and deterministic
(demo_data.py says how: eSpeak NG speakers mixed as LibriMix's generator mixes LibriSpeech).

    python scripts/make_demo_data.py --out_dir demo_data            # -> demo_data/Libri2Mix/wav8k/min
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: see device.py

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from demo_data import make_librimix  # noqa: E402  (after the path above)
from errors import ArgumentParser, UserError, run_main  # noqa: E402
from fileio import check_output_dir, one_writer  # noqa: E402


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", default="demo_data")
    parser.add_argument("--num_spks", type=int, default=2, help="talkers per mixture (Libri2Mix, Libri3Mix)")
    parser.add_argument("--n_train", type=int, default=200)
    parser.add_argument("--n_dev", type=int, default=20)
    parser.add_argument("--n_test", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample_rate", type=int, default=8000)
    args = parser.parse_args(argv)
    for name in ("n_train", "n_dev", "n_test"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.num_spks < 1 or args.sample_rate < 1000:
        raise UserError("--num_spks must be at least 1 and --sample_rate at least 1000")
    check_output_dir(args.out_dir, "--out_dir")
    with one_writer(args.out_dir, "--out_dir"):
        root = make_librimix(args.out_dir, args.num_spks, (args.n_train, args.n_dev, args.n_test),
                             args.seed, args.sample_rate)
    print(f"demo LibriMix set written to {root}")


if __name__ == "__main__":
    run_main(main)
