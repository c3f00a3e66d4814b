"""Benchmarks, one measurement per process, each printing one JSON line.

    python bench.py data [--data_dir data] [--passes 3]   # training segments/s read from MindRecord
    python bench.py train --batch 1 --seconds 4 [--steps 3]  # s/step, samples/s, peak memory
    python bench.py infer --seconds 30 [--reps 3] [--unrolled]   # real-time factor, peak memory
    python bench.py infer --onnx dprnn.onnx [--reps 3]       # the same for an exported ONNX model
    python bench.py stream --causal true --norm cgln [--block_ms 10 20 50]   # streaming a causal model
    python bench.py fp16 --ckpt_path best.ckpt --data_dir data   # SI-SNRi with float16 LSTMs (Ascend)

`data` without MindRecord files in data_dir first makes the demo LibriMix set and preprocesses it
into a temporary folder. `train` times graph-mode training steps (forward, PIT SI-SNR loss, backward,
clipping, Adam) of the configured model on random data, the first step (compilation) apart. `infer`
times the compiled network separating one random mixture (what separation.Separator runs for a
length it has met before), the first call (compilation) apart; with --onnx, an exported ONNX model
in onnxruntime at the length it was exported with (export.py --file_format ONNX --export_length S),
also reporting the peak before the model was loaded (the MindSpore import). Both print the JSON
shape of Asteroid's benchmark in the README's performance section, for side-by-side runs. `stream`
feeds --seconds of random input to streaming.StreamingSeparator in blocks of each --block_ms and
reports the model's algorithmic latency, the compute per block (median, 99th percentile) and the RTF.
`fp16` scores the checkpoint on the test split in export_length pieces (as the 310 path does) twice,
eagerly: the cpu form (float32 LSTMs) and the ascend form with DynamicRNN's documented float16
function run on CPU (device_check.float16_lstm_cost): what the Ascend 310's float16 LSTMs cost.
"""
import importlib.metadata
import json
import resource
import statistics
import tempfile
import time

from config import check_length, load_config

import mindspore as ms
import numpy as np

from checkpoint import build_network
from data import mindrecord_file, train_dataset
from device import setup_device
from device_check import float16_lstm_cost
from errors import ArgumentParser, UserError, run_main
from model import count_parameters
from demo_data import demo_mindrecord
from separation import compiled_network, load_onnx
from streaming import StreamingSeparator, block_timings, latency_ms, time_blocks
from train_wrapper import build_train_step


def bench_data(cfg, epochs):
    """Segments per second through the training pipeline, over `epochs` epochs (first excluded)."""
    path = mindrecord_file(cfg.data_dir, cfg.train_name)
    times, segments, batches = [], 0, 0
    for epoch in range(epochs + 1):
        started = time.perf_counter()
        dataset, info = train_dataset(path, cfg, epoch)
        for _ in dataset.create_tuple_iterator(output_numpy=True, num_epochs=1):
            if epoch:
                batches += 1
        if epoch:
            times.append(time.perf_counter() - started)
            segments += info["num_segments"] // cfg.batch_size * cfg.batch_size
    seconds = sum(times)
    return {"what": "data", "segments_per_s": round(segments / seconds, 1),
            "batches_per_s": round(batches / seconds, 2), "batch_size": cfg.batch_size,
            "segment_s": cfg.segment, "segment_mode": cfg.segment_mode,
            "num_workers": cfg.num_workers, "passes": epochs, "segments_per_epoch": info["num_segments"]}


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed_calls(call, count):
    """Seconds taken by each of count + 1 calls; the first (compilation) is reported apart."""
    times = []
    for _ in range(count + 1):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times[0], times[1:]


def bench_train(cfg, batch, seconds, steps):
    """Seconds per training step of the configured model at [batch, seconds of audio]."""
    setup_device(**cfg.group("device"))
    ms.set_seed(cfg.seed)
    net = build_network(cfg.group("model"))
    step = build_train_step(cfg.updated(batch_size=batch), net)
    length = int(seconds * cfg.sample_rate)
    sources = np.random.default_rng(0).standard_normal((batch, cfg.num_spks, length)).astype(np.float32)
    inputs = (ms.Tensor(sources.sum(1)), ms.Tensor(np.full(batch, length, np.int32)), ms.Tensor(sources))
    first, times = timed_calls(lambda: step(*inputs)[0].asnumpy(), steps)
    per_step = statistics.median(times)
    return {"what": "train", "model": "dprnn-mindspore", "params": count_parameters(net),
            "batch": batch, "seconds": seconds, "s_per_step": per_step, "steps": times,
            "compile_and_first_step_s": first, "samples_per_s": batch / per_step,
            "peak_rss_gb": round(peak_rss_gb(), 3), "mindspore": ms.__version__}


def bench_infer(cfg, seconds, reps, unrolled=False):
    """Real-time factor (seconds of processing per second of audio) separating one mixture with
    the compiled network, as separation.Separator runs a length it has met before (unrolled: the
    network as trained instead); the first call (compilation) apart."""
    setup_device(**cfg.group("device"))
    ms.set_seed(cfg.seed)
    net = build_network(cfg.group("model"))
    net.set_train(False)
    compiled = net if unrolled else compiled_network(net)
    rng = np.random.default_rng(0)
    mixture = ms.Tensor(rng.standard_normal((1, int(seconds * cfg.sample_rate))).astype(np.float32))
    first, times = timed_calls(lambda: compiled(mixture).asnumpy(), reps)
    return {"what": "infer", "model": "dprnn-mindspore", "params": count_parameters(net), "seconds": seconds,
            "block_loop": compiled is not net, "rtf": statistics.median(times) / seconds, "runs": times,
            "compile_and_first_run_s": first, "peak_rss_gb": round(peak_rss_gb(), 3), "mindspore": ms.__version__}


def bench_infer_onnx(path, sample_rate, reps):
    """bench_infer for an exported ONNX model run by onnxruntime, at its fixed input length."""
    before = peak_rss_gb()
    model, length = load_onnx(path)
    mixture = np.random.default_rng(0).standard_normal((1, length)).astype(np.float32)
    first, times = timed_calls(lambda: model(mixture), reps)
    seconds = length / sample_rate
    return {"what": "infer", "model": "dprnn-onnxruntime", "seconds": seconds,
            "rtf": statistics.median(times) / seconds, "runs": times, "first_run_s": first,
            "peak_rss_gb": round(peak_rss_gb(), 3), "peak_rss_before_model_gb": round(before, 3),
            "onnxruntime": importlib.metadata.version("onnxruntime")}


def bench_stream(cfg, seconds, blocks_ms):
    """Compute per block and RTF of streaming the configured causal model, per block size."""
    setup_device(**cfg.group("device"))
    ms.set_seed(cfg.seed)
    try:
        separator = StreamingSeparator(build_network(cfg.group("model")))
    except ValueError as err:
        raise UserError(f"{err} (bench.py stream --causal true --norm cgln)") from None
    audio = np.random.default_rng(0).standard_normal(int(seconds * cfg.sample_rate)).astype(np.float32)
    compile_s = sum(time_blocks(separator, audio[:cfg.sample_rate], cfg.sample_rate))  # compiles the step
    return {"what": "stream", "params": count_parameters(separator.step.net), "seconds": seconds,
            "latency_ms": round(latency_ms(cfg.kernel_size, cfg.K, cfg.sample_rate), 2),
            "chunk_hop_ms": round(1000 * separator.chunk_hop * separator.hop / cfg.sample_rate, 2),
            "blocks": block_timings(separator, audio, cfg.sample_rate, blocks_ms), "compile_s": round(compile_s, 2),
            "peak_rss_gb": round(peak_rss_gb(), 3), "mindspore": ms.__version__}


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["data", "train", "infer", "stream", "fp16"])
    parser.add_argument("--passes", type=int, default=3, help="measured passes over the data (data)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (train)")
    parser.add_argument("--seconds", type=float, default=4.0, help="audio per example (train, infer, stream)")
    parser.add_argument("--steps", type=int, default=3, help="measured steps after the first (train)")
    parser.add_argument("--reps", type=int, default=3, help="measured separations (infer)")
    parser.add_argument("--onnx", default="", help="an exported ONNX model to time in onnxruntime (infer)")
    parser.add_argument("--unrolled", action="store_true", help="the blocks unrolled, not Separator's loop (infer)")
    parser.add_argument("--block_ms", type=float, nargs="+", default=[10, 20, 50], help="block sizes (stream)")
    cfg = load_config(argv, parser, verbose=False, offers=("data", "model", "train", "device", "ckpt_path",
                                                           "export_length"))
    check_length("--seconds", cfg, cfg.seconds)
    check_length("--block_ms", cfg, *cfg.block_ms, unit=1e-3, whole_frame=False)
    if cfg.what == "train":
        result = bench_train(cfg, cfg.batch, cfg.seconds, cfg.steps)
    elif cfg.what == "infer":
        result = (bench_infer_onnx(cfg.onnx, cfg.sample_rate, cfg.reps) if cfg.onnx
                  else bench_infer(cfg, cfg.seconds, cfg.reps, cfg.unrolled))
    elif cfg.what == "stream":
        result = bench_stream(cfg, cfg.seconds, cfg.block_ms)
    elif cfg.what == "fp16":
        result = float16_lstm_cost(cfg)
    else:
        with tempfile.TemporaryDirectory() as work_dir:
            try:
                mindrecord_file(cfg.data_dir, cfg.train_name)
            except UserError:
                cfg = cfg.updated(data_dir=str(demo_mindrecord(cfg, work_dir)))
            result = bench_data(cfg, cfg.passes)
    print(json.dumps(result))


if __name__ == "__main__":
    run_main(main)
