"""What a device changes, checked against the CPU: the first-run self-test's checks (selftest.py) and
the cost of Ascend's float16 LSTMs, measured on CPU (bench.py fp16).

The self-test's golden files (scripts/selftest/): tiny.ckpt, a tiny model's weights with their
settings; golden.npz, one built-in mixture and that checkpoint's output for it computed on CPU; and
tiny_ascend.mindir, the checkpoint in the ascend form, for a 310 host's self-test (lite_app.py).
"""
import shutil
import tempfile
from pathlib import Path

import mindspore as ms
import numpy as np

from checkpoint import (build_network, checkpoint_settings, model_args, network_from_checkpoint, save_checkpoint,
                        trained_network)
from data import mindrecord_file, read_index, read_split
from device import setup_device
from errors import UserError
from evaluation import score_utterances, separate_utterances
from fileio import atomic_paths, check_output_dir, one_writer
from layers import emulate_dynamic_rnn
from lite_app import APP, ASCEND_MINDIR, HERE, RESTORE, compare, read_golden, run_app
from mindir import export_network
from separation import FixedLengthSeparator, load_mindir
from train_wrapper import build_train_step

# the shipped model: small enough to compile in seconds on any device
TINY = {"in_channels": 16, "hidden_channels": 16, "bn_channels": 16, "num_layers": 1, "K": 20, "kernel_size": 16}
TRAIN_STEPS = 8
GOLDEN_FILES = ("tiny.ckpt", "golden.npz", ASCEND_MINDIR)


def built_in_batch(sample_rate, batch=2, seconds=0.5):
    """Two talkers as harmonic tones with syllable-like envelopes: (mixture [B, T], sources [B, 2, T])."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    sources = np.zeros((batch, 2, len(t)), np.float32)
    for b in range(batch):
        for s in range(2):
            f0 = rng.uniform(100, 300)
            tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))
            envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t + rng.uniform(0, 6.3))
            sources[b, s] = 0.1 * tone * envelope
    return sources.sum(axis=1), sources


def tiny_checkpoint(golden_dir):
    ckpt = Path(golden_dir) / "tiny.ckpt"
    if not ckpt.is_file():
        raise UserError(f"{ckpt}: no such golden file: {RESTORE}")
    return ckpt


def check_training(cfg, target):
    """(PASS or FAIL, what was measured) for TRAIN_STEPS compiled steps on the built-in batch."""
    ms.set_seed(0)
    step = build_train_step(cfg, build_network(cfg.group("model"), target))
    mixture, sources = built_in_batch(cfg.sample_rate)
    lens = ms.Tensor(np.full(len(mixture), mixture.shape[1], np.int32))
    losses = [float(step(ms.Tensor(mixture), lens, ms.Tensor(sources))[0].asnumpy()) for _ in range(TRAIN_STEPS)]
    ok = all(np.isfinite(losses)) and losses[-1] < losses[0]  # the loss is -SI-SNR
    return ok, f"SI-SNR {-losses[0]:.2f} -> {-losses[-1]:.2f} dB in {TRAIN_STEPS} steps", "finite, rising"


def self_test(cfg, golden_dir):
    """Rows (check, PASS/FAIL/SKIP, measured, tolerance)."""
    target = setup_device(**cfg.group("device"))
    mixture, golden = read_golden(golden_dir)
    ckpt = tiny_checkpoint(golden_dir)
    rows = []

    def row(name, check):
        # what fails on new hardware is mostly MindSpore's own error (a kernel or a compile): a FAIL
        # row with its first line, and the other checks still run
        try:
            ok, measured, tolerance = check()
            rows.append((name, "PASS" if ok else "FAIL", measured, tolerance))
        except (UserError, RuntimeError, TypeError, ValueError) as err:
            first_line = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
            rows.append((name, "FAIL", first_line, ""))

    row("train", lambda: check_training(cfg, target))
    net, _ = network_from_checkpoint(ckpt, checkpoint_settings(cfg), target=target)
    net.set_train(False)
    row("golden", lambda: compare(net(ms.Tensor(mixture)).asnumpy(), golden, target))
    export_target = target.lower()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        exported = {}

        def export():
            exported["path"], summary = export_network(net, str(work / "selftest"), "MINDIR", mixture.shape[1],
                                                       export_target)
            return True, summary.split(": ", 1)[1], f"{export_target} form"
        row("export", export)
        if "path" not in exported:
            rows.append(("mindir", "SKIP", "no exported file", ""))
        else:
            row("mindir", lambda: compare(load_mindir(exported["path"])(mixture), golden, target))
        if not APP.is_file():
            rows.append(("lite_app", "SKIP", f"{APP.relative_to(HERE)} not built (bash ascend310_infer/build.sh)", ""))
        elif "path" in exported:
            device = "ascend" if target == "Ascend" else "cpu"
            row("lite_app", lambda: compare(run_app(exported["path"], mixture, device, cfg.device_id, work / "app")
                                            .reshape(golden.shape), golden, target))
    return target, rows


def make_golden(cfg, golden_dir):
    """Write tiny.ckpt, golden.npz and tiny_ascend.mindir (CPU only): a fresh tiny model, its output
    on a fixed mixture, and the model exported in the ascend form for that mixture's length."""
    if setup_device(**cfg.group("device")) != "CPU":
        raise UserError("golden files are computed on CPU: add --device_target CPU")
    golden_dir = check_output_dir(golden_dir, "--golden_dir")
    ms.set_seed(1)
    net = build_network(cfg.group("model"))
    mixture = built_in_batch(cfg.sample_rate, batch=1)[0]
    # the three belong together: a failure while writing any leaves all as they were
    targets = [golden_dir / name for name in GOLDEN_FILES]
    with one_writer(golden_dir, "--golden_dir"), atomic_paths(*targets) as (ckpt, npz, mindir):
        save_checkpoint(net, ckpt, {"model_args": model_args(cfg)})
        net, _ = network_from_checkpoint(ckpt, checkpoint_settings(cfg))  # the output of the file as written
        net.set_train(False)
        output = net(ms.Tensor(mixture)).asnumpy()
        with open(npz, "wb") as f:
            np.savez(f, mixture=mixture, output=output)
        export_ascend_form(ckpt, checkpoint_settings(cfg), mindir, mixture.shape[1])
    print(f"wrote {', '.join(str(golden_dir / name) for name in GOLDEN_FILES)}")


def export_ascend_form(ckpt, settings, path, length):
    """The checkpoint at ckpt (with checkpoint_settings) in the ascend form, input [1, length], written
    to path: what a 310 host runs in its self-test (lite_app.host_self_test), where nothing can export it."""
    net, _ = network_from_checkpoint(ckpt, settings, target="Ascend")
    with tempfile.TemporaryDirectory() as work:
        exported, _ = export_network(net, str(Path(work) / "model"), "MINDIR", length, "ascend")
        shutil.move(exported, path)


def float16_lstm_cost(cfg):
    """Mean SI-SNRi of the checkpoint with float32 and with float16 LSTMs, same pieces, and the SNR of
    the float16 estimates against the float32 ones."""
    setup_device(**cfg.group("device"))
    ms.set_context(mode=ms.PYNATIVE_MODE)  # DynamicRNNOnCPU runs numpy
    test_file = mindrecord_file(cfg.data_dir, cfg.test_name)
    result = {"what": "fp16", "ckpt_path": cfg.ckpt_path, "utterances": len(read_index(test_file)[0])}
    estimates = {}
    for form, target in (("float32", "CPU"), ("float16", "Ascend")):
        net, trained = trained_network(cfg, target)
        net.set_train(False)
        emulate_dynamic_rnn(net)
        length = trained.samples("export_length")
        separate = FixedLengthSeparator(lambda mixture: net(ms.Tensor(mixture)).asnumpy(), length)
        items = list(separate_utterances(read_split(test_file, trained.num_spks), separate, "pieces", length))
        estimates[form] = np.concatenate([item[3].ravel() for item in items]).astype(np.float64)
        rows = score_utterances(items, False, 1, trained.sample_rate)
        result[f"si_snri_{form}"] = round(float(np.mean([r["SI-SNRi"] for r in rows])), 6)
    result["difference_db"] = round(result["si_snri_float16"] - result["si_snri_float32"], 6)
    error = estimates["float16"] - estimates["float32"]
    result["estimates_snr_db"] = round(float(10 * np.log10(np.sum(estimates["float32"] ** 2) / np.sum(error ** 2))), 2)
    return result
