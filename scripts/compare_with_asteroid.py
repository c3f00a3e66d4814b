"""Equal-update comparison with Asteroid's DPRNNTasNet: both train the demo architecture on the same
LibriMix-layout data for the same number of updates, one after the other, then separate the same
test mixtures whole. Prints each side's per-epoch train/validation SI-SNR, test SI-SNRi and median
seconds per step.

    python scripts/compare_with_asteroid.py --peer_python /tmp/peer-venv/bin/python \
        --peer_trainer ../shared/peer/train_asteroid.py [--epochs 10] [--seeds 1 2] [--work_dir W]

The peer (Asteroid 0.7.0 on PyTorch, CPU) runs from its own environment: `--peer_trainer` is a
script taking `--data <Libri2Mix/wav8k/min> --out OUT --epochs E --seed S` that writes log.csv
(epoch, train_si_snr, valid_si_snr, median_step_s, ...) and the test mixtures separated whole as
sep_final/<mixture_ID>_s<k>.wav. The data is made by scripts/make_demo_data.py with a seed the
tests do not use (17), so neither side has seen it during development. A side whose results are
already in --work_dir is read back instead of trained again, so an interrupted comparison continues.

The peer's trainer builds its model from its CONFIG; it is set here from the demo config's model
(talkers, sample rate, encoder filters, kernel and stride, bottleneck, hidden size, chunk and hop,
blocks, norm, RNN type and direction), so both sides train the same architecture; a model Asteroid
cannot match (norm cgln, bidirectional: false, dropout) stops with the reason before anything runs.
Both have ReLU masks. Asteroid's DPRNNTasNet has no ReLU after its encoder; the paper, the model
zoo and this project do. `--peer_encoder_relu` also trains the peer with it
(encoder_activation="relu"): the same architecture on both sides down to that ReLU.
"""
import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from config import load_config  # noqa: E402  (the project's library, not a script)
from errors import ArgumentParser, UserError, run_main  # noqa: E402
from metrics import si_snr  # noqa: E402

DEMO_CONFIG = ROOT / "scripts" / "demo_config.yaml"


def run(command, log):
    """Run one stage, its output kept in log; a failure stops everything with the log's tail."""
    print("$", " ".join(map(str, command)), flush=True)
    with open(log, "w") as f:
        done = subprocess.run(list(map(str, command)), cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                              env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if done.returncode:
        sys.exit(f"error: {Path(log).stem} failed (exit {done.returncode}); see {log}:\n"
                 + "".join(open(log).readlines()[-15:]))


def make_data(args, work):
    librimix = work / "librimix" / "Libri2Mix" / "wav8k" / "min"
    if not (work / "data" / "train.mindrecord0").exists():
        run([sys.executable, "scripts/make_demo_data.py", "--out_dir", work / "librimix",
             "--seed", args.data_seed, "--n_train", args.n_train, "--n_dev", args.n_dev,
             "--n_test", args.n_test], work / "make_data.log")
        run([sys.executable, "preprocess.py", "--config_path", DEMO_CONFIG, "--in_dir", librimix,
             "--out_dir", work / "data"], work / "preprocess.log")
    return librimix


def read_test_split(librimix):
    """(mixture_ID, mixture [T], sources [2, T]) of the LibriMix test CSV."""
    with open(librimix / "metadata" / "mixture_test_mix_clean.csv", newline="") as f:
        rows = list(csv.DictReader(f))

    def read(path):  # the CSV's path, or the same file under this folder (sets moved since)
        return sf.read(librimix.joinpath(*Path(path).parts[-3:]))[0]

    for row in rows:
        yield (row["mixture_ID"], read(row["mixture_path"]),
               np.stack([read(row[f"source_{k}_path"]) for k in (1, 2)]))


def score_separated(librimix, separated):
    """Mean PIT SI-SNRi (dB) over the test split of the files <mixture_ID>_s<k>.wav in separated."""
    scores = []
    for mixture_id, mixture, sources in read_test_split(librimix):
        estimates = np.stack([sf.read(separated / f"{mixture_id}_s{k}.wav")[0] for k in (1, 2)])
        best = max(si_snr(estimates[list(p)], sources).mean() for p in itertools.permutations(range(2)))
        scores.append(best - si_snr(np.stack([mixture, mixture]), sources).mean())
    return float(np.mean(scores))


def train_mindspore(args, work, librimix, seed):
    out = work / f"mindspore-seed{seed}"
    if not (out / "test" / "summary.json").is_file():  # a finished run is reused
        train_and_test(args, work, out, seed)
    with open(out / "train_log.csv", newline="") as f:
        epochs = [{"train": float(r["train_si_snr"]), "valid": float(r["valid_si_snr"]),
                   "step_s": float(r["step_seconds"]), "valid_s": float(r["valid_seconds"])}
                  for r in csv.DictReader(f)]
    summary = json.loads((out / "test" / "summary.json").read_text())
    return {"epochs": epochs, "test_si_snri": summary["si_snri"]}


def train_and_test(args, work, out, seed):
    run([sys.executable, "train.py", "--config_path", DEMO_CONFIG, "--data_dir", work / "data",
         "--output_dir", out, "--epochs", args.epochs, "--seed", seed, "--device_target", "CPU",
         "--lr_schedule", "constant", "--dynamic_mixing", "false",  # the reference's protocol, not the demo's
         "--save_checkpoint_steps", 0, "--keep_checkpoint_max", 1], out.with_suffix(".log"))
    final = sorted(out.glob("dprnn-e*-s*.ckpt"))[-1]
    run([sys.executable, "evaluate.py", "--config_path", DEMO_CONFIG, "--ckpt_path", final,
         "--data_dir", work / "data", "--results_dir", out / "test", "--device_target", "CPU"],
        out / "evaluate.log")


# runs the peer's trainer (argv[1]) with its model's CONFIG updated from a JSON object (argv[2])
PEER_WITH_SETTINGS = """
import importlib.util, json, sys
settings = json.loads(sys.argv.pop(2))
sys.argv = sys.argv[1:]
spec = importlib.util.spec_from_file_location("train_asteroid", sys.argv[0])
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)
peer.CONFIG.update(settings)
peer.main()
"""


# this project's norms under Asteroid's names; Asteroid's cumulative norm (cgLN) takes 3-D input
# only, so its DPRNN cannot use it in the blocks and `cgln` has no peer
PEER_NORMS = {"gln": "gLN", "ln": "cLN"}


def peer_settings(cfg):
    """The peer's DPRNNTasNet settings for cfg's model: the same architecture.

    Asteroid's intra-chunk RNNs are always bidirectional and its `bidirectional` sets the
    inter-chunk ones only: that is this project's bidirectional model, or with `causal` its
    forward-only inter-chunk RNNs. A model the peer cannot build stops here with the reason.
    """
    if cfg.norm not in PEER_NORMS:
        raise UserError(f"Asteroid's DPRNN has no norm like this config's '{cfg.norm}' in its blocks: "
                        f"compare with norm {' or '.join(PEER_NORMS)}")
    if not cfg.bidirectional:
        raise UserError("Asteroid's DPRNN always runs its intra-chunk RNNs both ways: compare with "
                        "bidirectional: true (causal: true makes the inter-chunk ones forward-only)")
    if cfg.dropout:
        raise UserError("Asteroid's DPRNN hands dropout to one-layer RNNs, where PyTorch ignores it: "
                        "compare with dropout: 0")
    return {"n_src": cfg.num_spks, "sample_rate": cfg.sample_rate,
            "n_filters": cfg.in_channels, "kernel_size": cfg.kernel_size, "stride": cfg.kernel_size // 2,
            "bn_chan": cfg.bn_channels, "hid_size": cfg.hidden_channels, "chunk_size": cfg.K,
            "hop_size": cfg.K // 2, "n_repeats": cfg.num_layers, "norm_type": PEER_NORMS[cfg.norm],
            "rnn_type": cfg.rnn_type, "bidirectional": not cfg.causal, "dropout": 0}


def train_asteroid(args, work, librimix, seed, settings):
    encoder_relu = settings.get("encoder_activation") == "relu"
    name = f"asteroid{'-relu' if encoder_relu else ''}-seed{seed}"
    out = work / name
    if not (out / "summary.json").is_file():  # a finished run is reused
        launch = [args.peer_python, "-c", PEER_WITH_SETTINGS, Path(args.peer_trainer).resolve(),
                  json.dumps(settings)]
        run(launch + ["--data", librimix, "--out", out, "--epochs", args.epochs, "--seed", seed],
            work / f"{name}.log")
    with open(out / "log.csv", newline="") as f:
        epochs = [{"train": float(r["train_si_snr"]), "valid": float(r["valid_si_snr"]),
                   "step_s": float(r["median_step_s"]), "valid_s": float(r["valid_seconds"])}
                  for r in csv.DictReader(f)]
    return {"epochs": epochs, "test_si_snri": score_separated(librimix, out / "sep_final")}


def report(seed, sides):
    print(f"\nseed {seed}: SI-SNR (dB) per epoch, train / validation; median seconds per step")
    print(f"{'epoch':>5}  " + "  ".join(f"{name:>24}" for name in sides))
    for epoch in range(len(next(iter(sides.values()))["epochs"])):
        cells = [f"{e['train']:6.2f} / {e['valid']:5.2f}  {e['step_s']:.3f} s"
                 for e in (side["epochs"][epoch] for side in sides.values())]
        print(f"{epoch + 1:>5}  " + "  ".join(f"{c:>24}" for c in cells))
    print("test SI-SNRi (whole utterances): "
          + ", ".join(f"{name} {side['test_si_snri']:.2f} dB" for name, side in sides.items()))


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer_python", required=True, help="python of the peer's environment")
    parser.add_argument("--peer_trainer", required=True, help="the peer's train_asteroid.py")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work_dir", type=Path, default=ROOT / "outputs" / "compare_with_asteroid")
    parser.add_argument("--data_seed", type=int, default=17)
    parser.add_argument("--n_train", type=int, default=100)
    parser.add_argument("--n_dev", type=int, default=20)
    parser.add_argument("--n_test", type=int, default=20)
    parser.add_argument("--peer_encoder_relu", action="store_true",
                        help="also train the peer with the encoder ReLU (this project's architecture)")
    args = parser.parse_args(argv)
    for path in (args.peer_python, args.peer_trainer):
        if not Path(path).is_file():
            sys.exit(f"error: {path} not found: build the peer with `bash ../shared/peer/setup.sh` "
                     f"and pass its python and train_asteroid.py")
    peer = peer_settings(load_config(["--config_path", str(DEMO_CONFIG)], verbose=False))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    librimix = make_data(args, args.work_dir)
    results = {}
    for seed in args.seeds:
        results[seed] = {"mindspore": train_mindspore(args, args.work_dir, librimix, seed),
                         "asteroid": train_asteroid(args, args.work_dir, librimix, seed, peer)}
        if args.peer_encoder_relu:
            results[seed]["asteroid+relu"] = train_asteroid(args, args.work_dir, librimix, seed,
                                                            dict(peer, encoder_activation="relu"))
        report(seed, results[seed])
    (args.work_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nall figures in {args.work_dir / 'results.json'}")


if __name__ == "__main__":
    run_main(main)
