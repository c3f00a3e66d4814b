"""The causal DPRNN and streaming separation: the stated latency is the model's, the streamed output
is the whole-recording output for any block size, memory stays flat, and separate.py --streaming
writes the files that separate.py --window 0 writes."""
import re
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import soundfile as sf

from checkpoint import MODEL_ARGS, build_network, model_args, save_checkpoint
from config import load_config
from errors import UserError
from helpers import TINY_MODEL, TINY_TRAINING, run_in_process, script_main
from model import DPRNN
from streaming import StreamingSeparator, latency_ms, latency_samples

ROOT = Path(__file__).resolve().parents[1]
CAUSAL = ["--causal", "true", "--norm", "cgln"]


def causal_net(kernel_size=8, K=6, norm="cgln", rnn_type="LSTM", seed=0):
    ms.set_seed(seed)
    net = DPRNN(16, 8, 8, kernel_size, rnn_type=rnn_type, norm=norm, num_layers=2, K=K, causal=True,
                lstm_for="CPU")
    net.set_train(False)
    return net


def whole(net, mixtures):
    """The model's output for whole recordings in one pass: [B, T] -> [B, C, T]."""
    return net(ms.Tensor(np.asarray(mixtures, np.float32))).asnumpy()


@pytest.mark.parametrize("kernel_size, K", [(8, 6), (2, 8), (4, 4)])
def test_no_output_depends_on_input_further_ahead_than_the_stated_latency(kernel_size, K):
    """Changing one input sample t changes no output sample before t - latency, and (the bound is
    tight) does change the output latency samples before it where the look-ahead is largest."""
    net = causal_net(kernel_size, K)
    latency = latency_samples(kernel_size, K)
    length = 12 * K * kernel_size
    mixture = np.random.default_rng(1).standard_normal(length).astype(np.float32)
    changed = np.repeat(mixture[None], length, axis=0)
    changed[np.arange(length), np.arange(length)] += 1.0       # row t: sample t changed
    difference = np.abs(whole(net, changed) - whole(net, mixture[None])).max(axis=1)   # [t, T]
    for t in range(length):
        affected = np.nonzero(difference[t] > 1e-6)[0]
        assert affected.size and affected.min() >= t - latency, (t, affected.min(), latency)
    tight = [t - affected for t in range(length) for affected in np.nonzero(difference[t] > 1e-6)[0][:1]]
    assert max(tight) == latency


def test_the_docs_state_the_latency_of_the_default_and_demo_causal_models():
    readme = (ROOT / "docs" / "separation.md").read_text()
    for argv in ([], ["--config_path", str(ROOT / "scripts" / "demo_causal_config.yaml")]):
        cfg = load_config(argv, verbose=False)
        ms_text = f"{latency_ms(cfg.kernel_size, cfg.K, cfg.sample_rate):.2f}".rstrip("0").rstrip(".") + " ms"
        samples = latency_samples(cfg.kernel_size, cfg.K)
        assert re.search(rf"kernel {cfg.kernel_size}, K {cfg.K}\b.*{samples} samples.*{re.escape(ms_text)}", readme), \
            ms_text


@pytest.mark.parametrize("norm, rnn_type", [("cgln", "LSTM"), ("ln", "LSTM"), ("cgln", "GRU")])
@pytest.mark.parametrize("length", [803, 96])
def test_streamed_output_is_the_whole_recording_output_for_any_block_size(norm, rnn_type, length):
    """Blocks of one sample, of sizes that do not divide the stride (4) or the chunk hop (12
    samples), and one block larger than the recording all give the one-pass output."""
    net = causal_net(norm=norm, rnn_type=rnn_type)
    mixture = np.random.default_rng(2).standard_normal(length).astype(np.float32)
    expected = whole(net, mixture[None])[0]
    separator = StreamingSeparator(net)
    for block in (1, 3, 7, 13, 50, 5000):
        pieces = [separator.push(mixture[i:i + block]) for i in range(0, length, block)]
        pieces.append(separator.finish())
        assert all(p.shape[0] == 2 for p in pieces)
        np.testing.assert_allclose(np.concatenate(pieces, axis=1), expected, atol=1e-4, rtol=0)


def test_output_comes_as_soon_as_it_is_final():
    """After each block, every output sample more than the latency behind the input is out."""
    net = causal_net()
    latency = latency_samples(8, 6)
    separator = StreamingSeparator(net)
    mixture = np.random.default_rng(3).standard_normal(1000).astype(np.float32)
    out = 0
    for start in range(0, 1000, 5):
        out += separator.push(mixture[start:start + 5]).shape[1]
        assert out >= start + 5 - latency


def test_state_stays_the_same_size_however_long_the_stream():
    """What the separator keeps between blocks (unused input and the model's state) does not grow
    with the stream: its largest size over 30 s equals that over 3 s. (K=100 frames of an 8-sample hop: a
    model step every 50 ms, 660 in all, so the test stays quick; the blocks are 20 ms, as live.)"""
    net = causal_net(kernel_size=16, K=100)
    separator = StreamingSeparator(net)
    rng = np.random.default_rng(4)

    def kept():
        return len(separator.samples) + sum(int(np.prod(t.shape)) for t in separator.state)

    largest = {}
    for seconds in (3, 30):
        most = 0
        for _ in range(seconds * 50):           # 20-ms blocks at 8 kHz
            separator.push(rng.standard_normal(160).astype(np.float32))
            most = max(most, kept())
        separator.finish()
        largest[seconds] = most
    assert largest[30] == largest[3]


def test_only_a_causal_model_streams():
    ms.set_seed(0)
    with pytest.raises(ValueError, match="not causal"):
        StreamingSeparator(DPRNN(16, 8, 8, 8, norm="cgln", num_layers=1, K=6))
    with pytest.raises(ValueError, match="needs norm cgln or ln"):
        DPRNN(16, 8, 8, 8, norm="gln", num_layers=1, K=6, causal=True)
    with pytest.raises(UserError, match="causal: true needs norm cgln or ln .*add --norm cgln"):
        load_config(["--causal", "true"], verbose=False)


def run_separate(*argv):
    """separate.py as a process: what the user's terminal shows."""
    return subprocess.run([sys.executable, str(ROOT / "separate.py"), *argv], capture_output=True, text=True)


def test_trained_causal_checkpoint_streams_the_files_separate_writes_in_one_pass(prepared, librimix, tmp_path):
    """train.py trains a causal model; its checkpoint knows it is causal; separate.py --streaming
    (20-ms and 7-ms blocks) writes the files --window 0 writes, to 1e-4 in float, at the level
    under which the talkers add up to the mixture; a non-causal checkpoint is a one-line error."""
    _, data_dir = prepared
    run_dir = tmp_path / "run"
    script_main("train.py")(["--data_dir", str(data_dir), "--output_dir", str(run_dir), "--device_target", "CPU",
                             *TINY_TRAINING, *CAUSAL, "--max_steps", "2", "--epochs", "1"])
    ckpt = sorted(run_dir.glob("dprnn-e*-s*.ckpt"))[-1]
    source = sorted((librimix / "test" / "mix_clean").glob("*.wav"))[0]
    mixture, rate = sf.read(str(source), dtype="float32")
    sf.write(tmp_path / "mix.wav", mixture, rate, subtype="FLOAT")
    outputs = {}
    for name, argv in (("whole", ["--window", "0"]), ("blocks20", ["--streaming"]),
                       ("blocks7", ["--streaming", "--block_ms", "0.875"])):
        run_in_process("separate.py", "--ckpt_path", ckpt, tmp_path / "mix.wav", "--out_dir", tmp_path / name, *argv)
        outputs[name] = np.stack([sf.read(str(tmp_path / name / f"mix_s{k}.wav"), dtype="float32")[0]
                                  for k in (1, 2)])
    assert outputs["whole"].shape == (2, len(mixture))
    for name in ("blocks20", "blocks7"):
        np.testing.assert_allclose(outputs[name], outputs["whole"], atol=1e-4, rtol=0)
    gains, *_ = np.linalg.lstsq(outputs["whole"].T, mixture, rcond=None)
    np.testing.assert_allclose(gains, 1.0, atol=1e-3)   # already at the mixture's level

    # a non-causal model's checkpoint as train.py writes it: its weights and its model_args
    offline = tmp_path / "offline.ckpt"
    offline_cfg = load_config(TINY_TRAINING, verbose=False)
    save_checkpoint(build_network(offline_cfg.group("model")), offline, {MODEL_ARGS: model_args(offline_cfg)})
    result = run_separate("--ckpt_path", str(offline), "--streaming", str(tmp_path / "mix.wav"), "--out_dir",
                          str(tmp_path / "refused"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {offline}: the model is not causal (bidirectional inter-chunk RNNs or gln): streaming needs a "
        f"checkpoint trained with causal: true"]
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())


def test_window_0_separates_in_one_pass(prepared, librimix, tmp_path):
    """--window 0 writes the model's output for the whole file (any model), at the mixture's level."""
    ckpt = tmp_path / "tiny.ckpt"
    ms.set_seed(5)
    net = build_network(load_config(TINY_MODEL, verbose=False).group("model"))
    ms.save_checkpoint(net, str(ckpt))
    source = sorted((librimix / "test" / "mix_clean").glob("*.wav"))[0]
    mixture, rate = sf.read(str(source), dtype="float32")
    sf.write(tmp_path / "mix.wav", mixture, rate, subtype="FLOAT")
    run_in_process("separate.py", "--ckpt_path", ckpt, *TINY_MODEL, "--window", "0", tmp_path / "mix.wav",
                   "--out_dir", tmp_path / "out")
    written = np.stack([sf.read(str(tmp_path / "out" / f"mix_s{k}.wav"), dtype="float32")[0] for k in (1, 2)])
    net.set_train(False)
    estimates = whole(net, mixture[None])[0]
    gains, *_ = np.linalg.lstsq(estimates.T, mixture, rcond=None)
    np.testing.assert_allclose(written, estimates * gains[:, None], atol=1e-4, rtol=0)


def test_bench_stream_reports_latency_and_compute_per_block(capsys):
    import json
    script_main("bench.py")(["stream", *TINY_MODEL, *CAUSAL, "--seconds", "1", "--block_ms", "5", "50"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["latency_ms"] == pytest.approx(1000 * ((20 + 1) * 8 - 1) / 8000, abs=0.01)   # K 20, kernel 16
    assert report["chunk_hop_ms"] == pytest.approx(1000 * 10 * 8 / 8000)
    assert [b["block_ms"] for b in report["blocks"]] == [5, 50]
    assert all(0 <= b["median_ms"] <= b["p99_ms"] and b["rtf"] > 0 for b in report["blocks"])
