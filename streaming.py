"""Streaming separation with a causal DPRNN: the input block by block, each output sample as soon
as it is final.

A causal model (model.DPRNN with causal: true) has forward-only inter-chunk RNNs and cumulative
or per-position norms, so a chunk depends on no later chunk. StreamingSeparator runs it one chunk
at a time (model.ChunkStep) and keeps what the model needs between blocks:
- the input samples of the encoder frame not yet complete (the encoder's overlap);
- the bottleneck frames of the chunk not yet complete (a partial chunk);
- each dual-path block's inter-chunk RNN state, one per in-chunk position;
- the running totals of every cumulative norm;
- the half-finished overlap-adds of the chunks and of the decoder's frames.
Memory therefore stays flat in the recording's length. The concatenated outputs equal the model's
output for the whole recording in one pass (tests/test_streaming.py).
"""
import math
import time

import mindspore as ms
import numpy as np

from errors import UserError
from model import ChunkStep, GlobalLayerNorm, chunk_padding, unpack_state
from separation import check_input_finite, check_output_finite, least_squares_gains


def latency_samples(kernel_size, K):
    """How far ahead of an output sample the causal model looks, in samples.

    Output sample n needs encoder frame l = n // H (H = kernel_size / 2, the stride). Its mask
    needs the later of the two chunks covering it, which ends with frame (l // P + 2) P - 1
    (P = K / 2, the chunk hop), whose last sample is ((l // P + 2) P + 1) H - 1. That is furthest
    ahead of n when n = l H and l is a multiple of P: (K + 1) H - 1 samples.
    """
    return (K + 1) * (kernel_size // 2) - 1


def latency_ms(kernel_size, K, sample_rate):
    return 1000 * latency_samples(kernel_size, K) / sample_rate


def is_causal(net):
    """Whether no output of the DPRNN depends on a later chunk: forward-only inter-chunk RNNs and
    no global norm."""
    return not (any(block.inter.rnn.bidirectional for block in net.mask_estimator.blocks)
                or any(isinstance(cell, GlobalLayerNorm) for _, cell in net.cells_and_names()))


class StreamingSeparator:
    """Separates a mono stream block by block with a causal DPRNN, one compiled ChunkStep per
    chunk hop (P H samples: 50 ms for the demo's causal model, 15.6 ms for the default one).

    push(block [n] float32) -> [C, m]: the output samples that became final (m may be 0);
    finish() -> [C, rest]: the end, with the zero padding the model gives a whole recording; the
    separator is then ready for a new stream. Concatenated, the outputs are net(stream).
    """

    def __init__(self, net):
        if not is_causal(net):
            raise ValueError("the model is not causal (bidirectional inter-chunk RNNs or gln): streaming "
                             "needs a checkpoint trained with causal: true")
        if net.mask_estimator.chunk_size % 2:
            raise ValueError(f"streaming needs an even K (chunk hop K/2), got {net.mask_estimator.chunk_size}")
        net.set_train(False)
        self.step = ChunkStep(net)
        self.hop = net.encoder.hop
        self.chunk_size = net.mask_estimator.chunk_size
        self.chunk_hop = self.chunk_size // 2
        self.all_valid = ms.Tensor(np.ones((1, self.chunk_hop, 1), np.float32))
        self.reset()

    def reset(self):
        self.received = 0                          # input samples so far
        self.emitted = 0                           # output samples so far
        self.steps = 0                             # chunk steps so far
        self.samples = np.zeros(0, np.float32)     # input from the first sample of the next step's frames
        self.state = self.step.initial_state()

    def push(self, block):
        block = np.asarray(block, np.float32).reshape(-1)
        self.received += len(block)
        self.samples = np.concatenate([self.samples, block])
        out = []
        needed = (self.chunk_hop + 1) * self.hop
        while len(self.samples) >= needed:
            out.append(self._step(self.samples[:needed], self.all_valid))
            self.samples = self.samples[self.chunk_hop * self.hop:]
        return self._emit(out, self.received)

    def finish(self):
        """The rest of the output, as the model gives it for the whole stream; then reset()."""
        total = self.received
        if total < 2 * self.hop:
            raise ValueError(f"a stream needs at least kernel_size ({2 * self.hop}) samples, got {total}")
        frames = math.ceil(total / self.hop) - 1            # the model's frames: input padded to whole strides
        K, P = self.chunk_size, self.chunk_hop
        chunks = (P + frames + chunk_padding(frames, K)) // P
        needed = (P + 1) * self.hop
        out = []
        for step in range(self.steps, chunks):
            samples = np.zeros(needed, np.float32)
            samples[:min(needed, len(self.samples))] = self.samples[:needed]
            valid = (np.arange(step * P, (step + 1) * P) < frames).astype(np.float32).reshape(1, P, 1)
            out.append(self._step(samples, ms.Tensor(valid)))
            self.samples = self.samples[P * self.hop:]
        _norm_totals, _features, _frames, _chunk_tail, decoder_tail, _blocks = unpack_state(self.state,
                                                                                            self.step.rnn_sizes)
        out.append(decoder_tail.asnumpy())                  # the last frame's second half
        result = self._emit(out, total)
        self.reset()
        return result

    def _step(self, samples, valid):
        out, *state = self.step(ms.Tensor(samples[None]), valid, *self.state)
        self.state = tuple(state)
        self.steps += 1
        # the first step completes only the padding before the recording
        return out.asnumpy() if self.steps > 1 else out.asnumpy()[:, :0]

    def _emit(self, pieces, limit):
        out = np.concatenate(pieces, axis=1) if pieces else np.zeros((self.step.net.mask_estimator.num_spks, 0),
                                                                     np.float32)
        out = out[:, :limit - self.emitted]
        self.emitted += out.shape[1]
        return out


def time_blocks(separator, audio, block):
    """Seconds of compute for each push of `audio` in blocks of `block` samples, the finish last."""
    times = []
    for start in range(0, len(audio), block):
        started = time.perf_counter()
        separator.push(audio[start:start + block])
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    separator.finish()
    times.append(time.perf_counter() - started)
    return times


def block_timings(separator, audio, sample_rate, blocks_ms):
    """For each block size: compute per push in ms (median, 99th percentile) and the RTF."""
    results = []
    for block_ms in blocks_ms:
        times = np.array(time_blocks(separator, audio, max(1, round(block_ms * sample_rate / 1000)))[:-1])
        results.append({"block_ms": block_ms, "median_ms": round(1000 * float(np.median(times)), 2),
                        "p99_ms": round(1000 * float(np.percentile(times, 99)), 2),
                        "rtf": round(float(times.sum()) * sample_rate / len(audio), 3)})
    return results


class StreamingSeparation:
    """separate.py --streaming: one file through a StreamingSeparator in blocks of block_ms, each
    talker written as its samples become final; the interface of separation.WindowedSeparation.

    The talkers' levels (separation.mixture_gains over the whole recording, as separate.py gives
    them without windows) are known only at the end: run() returns them for the final copy.
    """

    def __init__(self, separator, model_rate, block_ms):
        self.separator = separator
        self.model_rate = model_rate
        self.block_ms = block_ms

    def run(self, source, writers, progress):
        """source: an open sf.SoundFile at the model's rate; writers: one per talker.
        Returns (each talker's peak absolute sample, its gain)."""
        if source.samplerate != self.model_rate:
            raise UserError(f"{source.name}: {source.samplerate} Hz, but the model streams at "
                            f"{self.model_rate} Hz: resample the file first (or separate it without "
                            f"--streaming, which resamples)")
        block = max(1, round(self.block_ms * self.model_rate / 1000))
        speakers = len(writers)
        gram, cross = np.zeros((speakers, speakers)), np.zeros(speakers)
        peaks = np.zeros(speakers)
        unmatched = np.zeros(0, np.float32)   # input samples whose outputs are still to come

        def write(estimates):
            nonlocal unmatched, peaks, gram, cross
            count = check_output_finite(estimates).shape[1]
            mixture, unmatched = unmatched[:count], unmatched[count:]
            wide = estimates.astype(np.float64)
            gram += wide @ wide.T
            cross += wide @ mixture
            for writer, estimate in zip(writers, estimates):
                writer.write(estimate)
            if count:
                peaks = np.maximum(peaks, np.abs(estimates).max(axis=1))

        for start in progress(range(0, source.frames, block)):
            data = check_input_finite(source.read(block, dtype="float32", always_2d=True).mean(axis=1), source, start)
            unmatched = np.concatenate([unmatched, data])
            write(self.separator.push(data))
        write(self.separator.finish())
        return peaks, least_squares_gains(gram, cross)
