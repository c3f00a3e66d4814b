"""DPRNN: Dual-Path RNN for single-channel speech separation.

Luo, Chen & Yoshioka, "Dual-path RNN: efficient long sequence modeling for time-domain
single-channel speech separation", ICASSP 2020 (arXiv:1910.06379).

Shapes: B batch, T samples, C speakers, N encoder filters, L encoder frames,
D bottleneck channels, K chunk length, S number of chunks.

    mixture [B, T]
      -> Encoder (Conv1d + ReLU)                             [B, L, N]
      -> MaskEstimator (norm, bottleneck, chunking,
         DualPathBlock x num_layers, overlap-add, gates)     [B, C, L, N]
      -> masks * encoder output -> Decoder (ConvTranspose1d) [B, C, T]

Channels last throughout, as the RNN kernels want their sequences. The layer set and initialisers
are those of the MindSpore model-zoo DPRNN, without its bugs: the norms' gain and bias are trained,
`rnn_type` and `norm` are honoured, and no dead init loop. layers.py holds the CPU-friendly forms
of the zoo's layers (1x1 convolutions as matrix products, one LSTM kernel call for both directions)
with the zoo's parameter shapes and names.

The stages (DPRNN.encode / frames, MaskEstimator.chunks, the dual-path blocks,
MaskEstimator.speaker_features and masks, overlap-add, DPRNN.decode) are defined once and run three
ways, side by side at the end of this file: DPRNN itself (training, export), BlockLoopNetwork (the
blocks as a graph loop over one block: inference in less memory) and ChunkStep (one chunk hop of
a causal model, its state carried between calls: streaming).
"""
import copy
import math

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeUniform, XavierNormal, initializer

from layers import (RNNS, FusedLSTM, Linear, PointwiseConv, PReLU, cumsum_by_products, expand_as, matmul,
                    matmul_transposed, pad_axis, recurrent_layer)
from metrics import EPS



class _ChannelAffine(nn.Cell):
    """Per-channel gain and bias for normalisations of channels-last tensors [B, ..., N]."""

    def __init__(self, channels):
        super().__init__()
        self.gain = Parameter(initializer("ones", [channels], ms.float32), name="gain")
        self.bias = Parameter(initializer("zeros", [channels], ms.float32), name="bias")


class GlobalLayerNorm(_ChannelAffine):
    """gLN: one mean and variance per utterance over all positions and channels.

    x [B, L, N] or [B, S, K, N] -> same shape.
    """

    def construct(self, x):
        # sums over one flattened axis divided by the count: MindSpore's CPU ReduceMean is much
        # slower than ReduceSum, and a sum over several axes slower than over one. ops.div, not
        # `/`: a tensor divided by a Python number exports as Divs, which no device documents
        flat = x.reshape(x.shape[0], -1)
        count = flat.shape[1]
        centred = flat - expand_as(ops.div(flat.sum(axis=1, keepdims=True), count), flat)
        var = ops.div((centred * centred).sum(axis=1, keepdims=True), count)
        # a Div of a Sqrt: MindSpore's ONNX exporter has neither Rsqrt nor Reciprocal (var is [B, 1])
        scale = ops.div(1.0, ops.sqrt(var + EPS)).reshape((x.shape[0],) + (1,) * (x.ndim - 1)) * self.gain
        centred = centred.reshape(x.shape)
        if not self.training:  # see expand_as: training would keep the full-size scale
            scale = expand_as(scale, centred)
        return centred * scale + expand_as(self.bias, centred)


class ChannelLayerNorm(_ChannelAffine):
    """LN: statistics over the channels at each position separately.

    x [B, L, N] or [B, S, K, N] -> same shape.
    """

    def __init__(self, channels):
        super().__init__(channels)
        self.layer_norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=EPS)

    def construct(self, x):
        return self.layer_norm(x, self.gain, self.bias)[0]

    def step(self, x, totals):
        """CumulativeLayerNorm.step's interface (streaming): no statistics carry over."""
        return self.construct(x), totals


class CumulativeLayerNorm(_ChannelAffine):
    """cLN: causal statistics over everything up to and including each step of axis 1.

    x [B, L, N] (steps are frames) or [B, S, K, N] (steps are chunks) -> same shape.
    With `cumsum_by_products` (set for ONNX export) the running sums are matrix products.
    """

    def __init__(self, channels):
        super().__init__(channels)
        self.cumsum_by_products = False

    def _running_sum(self, per_step):
        if self.cumsum_by_products:
            return cumsum_by_products(per_step.reshape(per_step.shape[:2])).reshape(per_step.shape)
        return ops.cumsum(per_step, axis=1)

    def construct(self, x):
        sums, squares, count = self._running_totals(x)
        return self._normalise(x, sums, squares, count)

    def step(self, x, totals):
        """construct's output for the next steps x of a sequence whose earlier steps left `totals`
        (running sum, sum of squares and count of their values, each [B, 1, ...] as x; zeros at the
        start): streaming. -> (output, totals after x)."""
        sums, squares, count = self._running_totals(x)
        sums, squares, count = sums + totals[0], squares + totals[1], count + totals[2]
        return self._normalise(x, sums, squares, count), (sums[:, -1:], squares[:, -1:], count[:, -1:])

    def _running_totals(self, x):
        axes = tuple(range(2, x.ndim))
        steps = x.shape[1]
        values_per_step = x.size // (x.shape[0] * steps)
        count = (ops.arange(1, steps + 1, dtype=ms.float32) * values_per_step).reshape(
            (1, steps) + (1,) * len(axes))
        return (self._running_sum(x.sum(axis=axes, keepdims=True)),
                self._running_sum((x ** 2).sum(axis=axes, keepdims=True)), count)

    def _normalise(self, x, sums, squares, count):
        mean = sums / count
        var = ops.relu(squares / count - mean ** 2)
        return (x - mean) / ops.sqrt(var + EPS) * self.gain + self.bias


# Asteroid's names: gLN global, cgLN cumulative (causal), and "ln" per position, which Asteroid
# calls cLN (channel-wise)
NORMS = {"gln": GlobalLayerNorm, "cgln": CumulativeLayerNorm, "ln": ChannelLayerNorm}


class _Filterbank(nn.Cell):
    """The learned filters of the encoder or the decoder: W taps for each of N channels, in
    nn.Conv1d's / nn.Conv1dTranspose's [N, 1, 1, W] shape, name and initialisation, so checkpoints of
    the convolutional layers load unchanged.  The stride is W/2."""

    def __init__(self, channels, kernel_size):
        super().__init__()
        self.hop = kernel_size // 2
        self.weight = Parameter(initializer("HeUniform", [channels, 1, 1, kernel_size], ms.float32),
                                name="weight")


class Encoder(_Filterbank):
    """nn.Conv1d(1 -> N, kernel W, stride W/2, no bias) as one matrix product over frames: MindSpore's
    CPU Conv2D was slow for this small job.

    mixture [B, (L + 1) * W/2] -> frames [B, L, N], channels last.
    """

    def construct(self, mixture):
        halves = mixture.reshape(mixture.shape[0], -1, self.hop)               # [B, L + 1, W/2]
        frames = ops.concat((halves[:, :-1], halves[:, 1:]), axis=-1)          # [B, L, W]
        batch, length, kernel_size = frames.shape
        out = matmul_transposed(frames.reshape(-1, kernel_size), self.weight.reshape(-1, kernel_size))
        return out.reshape(batch, length, -1)


class Decoder(_Filterbank):
    """nn.Conv1dTranspose(N -> 1, kernel W, stride W/2, no bias) as a matrix product and an
    overlap-add of half-frames (its CPU kernels were slower still than the encoder's).

    frames [B, L, N] -> signal [B, (L + 1) * W/2].
    """

    def construct(self, frames):
        batch, length, channels = frames.shape
        pieces = matmul(frames.reshape(-1, channels), self.weight.reshape(channels, -1))
        pieces = pieces.reshape(batch, length, -1)                             # [B, L, W]
        first, second = pieces[:, :, :self.hop], pieces[:, :, self.hop:]      # [B, L, W/2]
        # each frame's first half lands on its own hop, the second half on the next one (slices
        # and a concat: zero-padding both halves took longer in MindSpore's CPU profile)
        overlapped = first[:, 1:] + second[:, :-1]                             # [B, L - 1, W/2]
        return ops.concat((first[:, :1], overlapped, second[:, -1:]), axis=1).reshape(batch, -1)


def chunk_padding(length, chunk_size):
    """The zero frames split_chunks puts after `length` frames (before its last half chunk), so that
    half a chunk, the frames and these make whole chunks."""
    return chunk_size - (chunk_size // 2 + length % chunk_size) % chunk_size


def split_chunks(x, chunk_size):
    """Cut frames into chunks of K with hop K/2, zero-padded so every frame lies in two chunks.

    x [B, L, D] -> [B, S, K, D], S even.
    """
    batch, length, channels = x.shape
    hop = chunk_size // 2
    gap = chunk_padding(length, chunk_size)
    # a fixed pad cut to length: a graph compiled for any length cannot pad by a computed amount
    x = pad_axis(x, 1, hop, chunk_size + hop)[:, :hop + length + gap + hop]
    first = x[:, :-hop].reshape(batch, -1, chunk_size, channels)
    second = x[:, hop:].reshape(batch, -1, chunk_size, channels)
    return ops.concat([first, second], axis=2).reshape(batch, -1, chunk_size, channels)


def overlap_add(chunks, length):
    """Inverse of `split_chunks` up to the overlap: sums the two chunks covering each frame.

    chunks [B, S, K, D] -> [B, length, D].
    """
    batch, _, chunk_size, channels = chunks.shape
    hop = chunk_size // 2
    pairs = chunks.reshape(batch, -1, 2 * chunk_size, channels)
    first = pairs[:, :, :chunk_size].reshape(batch, -1, channels)[:, hop:]
    second = pairs[:, :, chunk_size:].reshape(batch, -1, channels)[:, :-hop]
    return (first + second)[:, :length]


class PathRNN(nn.Cell):
    """An RNN along one axis of the chunks, projected back to D channels, normalised, plus residual.

    along="intra": each chunk's K frames are a sequence (local context);
    along="inter": the S chunks at each in-chunk position are a sequence (global context).
    x [B, S, K, D] -> [B, S, K, D].
    """

    # permutations to time-major [steps, B, outer, D] and back
    _TO_SEQUENCES = {"intra": (2, 0, 1, 3), "inter": (1, 0, 2, 3)}
    _FROM_SEQUENCES = {"intra": (1, 2, 0, 3), "inter": (1, 0, 2, 3)}

    def __init__(self, along, channels, hidden_channels, rnn_type, norm, bidirectional, dropout, lstm_for):
        super().__init__()
        self.to_sequences = self._TO_SEQUENCES[along]
        self.from_sequences = self._FROM_SEQUENCES[along]
        self.rnn = recurrent_layer(rnn_type, channels, hidden_channels, bidirectional, lstm_for)
        self.dropout = nn.Dropout(p=dropout)
        rnn_out = hidden_channels * (2 if bidirectional else 1)
        self.proj = Linear(rnn_out, channels, weight_init="HeUniform")
        self.norm = NORMS[norm](channels)

    def construct(self, x):
        out, _ = self.rnn(self._sequences(x))
        return x + self.norm(self._projected(out, x.shape))

    def step(self, x, rnn_state, norm_totals):
        """construct for the next chunks x [B, s, K, D] of a sequence, continuing the RNN's state
        (None: from zeros) and the norm's running totals (streaming; norm cgln or ln).
        -> (output, RNN state, norm totals) after x."""
        out, rnn_state = self.rnn(self._sequences(x), rnn_state)
        out, norm_totals = self.norm.step(self._projected(out, x.shape), norm_totals)
        return x + out, rnn_state, norm_totals

    def _sequences(self, x):
        """[B, S, K, D] -> time-major sequences [steps, batch * outer, D]."""
        seq = x.transpose(self.to_sequences)
        steps, batch, outer, channels = seq.shape
        return seq.reshape(steps, batch * outer, channels)

    def _projected(self, out, shape):
        """RNN output [steps, batch * outer, H'] -> D channels, back in x's layout [B, S, K, D]."""
        sequence_shape = tuple(shape[i] for i in self.to_sequences)
        out = self.proj(self.dropout(out)).reshape(sequence_shape)
        return out.transpose(self.from_sequences)


class DualPathBlock(nn.Cell):
    """Intra-chunk then inter-chunk PathRNN.  x [B, S, K, D] -> [B, S, K, D].

    causal: the inter-chunk RNN runs forward only, so a chunk depends on no later chunk."""

    def __init__(self, channels, hidden_channels, rnn_type, norm, bidirectional, dropout, lstm_for, causal):
        super().__init__()
        self.intra = PathRNN("intra", channels, hidden_channels, rnn_type, norm, bidirectional, dropout,
                             lstm_for)
        self.inter = PathRNN("inter", channels, hidden_channels, rnn_type, norm, bidirectional and not causal,
                             dropout, lstm_for)

    def construct(self, x):
        return self.inter(self.intra(x))


class MaskEstimator(nn.Cell):
    """Encoder frames [B, L, N] -> non-negative masks [B, C, L, N].

    Works channels-last ([B, L, N], [B, S, K, D]) throughout: the RNN kernels want time-major
    sequences of channel vectors, so this layout leaves one transpose each way per RNN at most.
    """

    def __init__(self, in_channels, hidden_channels, bn_channels, rnn_type, norm, dropout,
                 bidirectional, num_layers, K, num_spks, lstm_for, causal):
        super().__init__()
        self.chunk_size = K
        self.num_spks = num_spks
        self.norm = NORMS[norm](in_channels)
        self.bottleneck = PointwiseConv(in_channels, bn_channels, False, "HeUniform")
        self.blocks = nn.SequentialCell([
            DualPathBlock(bn_channels, hidden_channels, rnn_type, norm, bidirectional, dropout, lstm_for, causal)
            for _ in range(num_layers)])
        self.prelu = PReLU()
        self.to_speakers = PointwiseConv(bn_channels, bn_channels * num_spks, True, "HeUniform")
        self.output = PointwiseConv(bn_channels, bn_channels, True, "XavierUniform")
        self.output_gate = PointwiseConv(bn_channels, bn_channels, True, "XavierUniform")
        self.to_masks = PointwiseConv(bn_channels, in_channels, False, "HeUniform")

    def construct(self, frames):
        return self.masks_from_chunks(self.blocks(self.chunks(frames)), frames.shape[1])

    def chunks(self, frames):
        """Encoder frames [B, L, N] -> bottleneck features cut into chunks [B, S, K, D]."""
        return split_chunks(self.bottleneck(self.norm(frames)), self.chunk_size)

    def masks_from_chunks(self, x, length):
        """The dual-path blocks' output [B, S, K, D] -> masks [B, C, L, N] for L = length frames."""
        return self.masks(overlap_add(self.speaker_features(x), length))

    def speaker_features(self, x):
        """The dual-path blocks' output [B, S, K, D] -> each talker's features [B, S, K, C*D]."""
        return self.to_speakers(self.prelu(x))

    def masks(self, x):
        """Overlap-added speaker features [B, L, C*D] -> masks [B, C, L, N]."""
        batch, length, _ = x.shape
        x = x.reshape(batch, length, self.num_spks, -1)             # [B, L, C, D]
        x = ops.tanh(self.output(x)) * ops.sigmoid(self.output_gate(x))
        masks = ops.relu(self.to_masks(x))                          # [B, L, C, N]
        return masks.transpose(0, 2, 1, 3)


class DPRNN(nn.Cell):
    """Mixture [B, T] -> separated sources [B, C, T], for any T >= kernel_size.

    The encoder has stride kernel_size / 2 (kernel_size even); the input is zero-padded at the end
    to a whole number of strides and the decoder's output cut back to T. causal (with norm cgln or ln)
    makes every output sample depend on no input more than streaming.latency_samples ahead of it.
    lstm_for: the device target the LSTMs are built for (layers.LSTM_FORMS: "CPU" runs them as
    layers.FusedLSTM on MindSpore's CPU kernels, "Ascend" as DynamicRNN in float16), or None for
    nn.LSTM as MindSpore builds it on this host; checkpoint.build_network sets it.
    """

    def __init__(self, in_channels=64, hidden_channels=128, bn_channels=128, kernel_size=2,
                 rnn_type="LSTM", norm="gln", dropout=0.0, bidirectional=True, num_layers=6, K=250,
                 num_spks=2, init="asteroid", causal=False, lstm_for=None):
        super().__init__()
        check_model_args(kernel_size, rnn_type, norm, K, num_spks, init, causal)
        self.kernel_size = kernel_size
        self.num_spks = num_spks
        self.encoder = Encoder(in_channels, kernel_size)
        self.mask_estimator = MaskEstimator(in_channels, hidden_channels, bn_channels, rnn_type, norm,
                                            dropout, bidirectional, num_layers, K, num_spks, lstm_for,
                                            causal)
        self.decoder = Decoder(in_channels, kernel_size)
        if init == "asteroid":
            self.init_like_asteroid()

    def init_like_asteroid(self):
        """Asteroid's initial weights instead of the model zoo's He-uniform ones (which the layers
        are built with): encoder and decoder filters Xavier-normal (Asteroid's free filterbank),
        1x1 convolutions and projections uniform in +-1/sqrt(fan_in) (PyTorch's default), both
        smaller than the zoo's.  With the zoo's weights the same training falls behind Asteroid's
        from the first epoch (scripts/compare_with_asteroid.py; docs/performance.md, "Learning at
        equal updates with Asteroid").
        RNN weights, biases and norms start the same either way."""
        for _, cell in self.cells_and_names():
            if isinstance(cell, (PointwiseConv, Linear)):
                cell.weight.set_data(initializer(HeUniform(math.sqrt(5)), cell.weight.shape, ms.float32))
        for weight in (self.encoder.weight, self.decoder.weight):
            weight.set_data(initializer(XavierNormal(), weight.shape, ms.float32))

    def construct(self, mixture):
        frames = self.encode(mixture)
        return self.decode(frames, self.mask_estimator(frames), mixture.shape[1])

    def encode(self, mixture):
        """mixture [B, T] -> encoder frames [B, L, N]."""
        stride = self.encoder.hop
        hops = (mixture.shape[1] + stride - 1) // stride  # a whole number of strides covering T
        return self.frames(pad_axis(mixture, 1, 0, stride)[:, :hops * stride])

    def frames(self, samples):
        """Samples [B, (L + 1) H], a whole number of strides H -> encoder frames [B, L, N]."""
        return ops.relu(self.encoder(samples))

    def decode(self, frames, masks, length):
        """Encoder frames [B, L, N] and masks [B, C, L, N] -> the first `length` samples of each
        source [B, C, length]."""
        batch = frames.shape[0]
        frames = frames.expand_dims(1)                                  # [B, 1, L, N]
        if not self.training:  # see expand_as
            frames = expand_as(frames, masks)
        masked = masks * frames                                         # [B, C, L, N]
        sources = self.decoder(masked.reshape(batch * self.num_spks, -1, masked.shape[-1]))  # [B*C, T + pad]
        return sources.reshape(batch, self.num_spks, -1)[:, :, :length]

    def set_onnx_export(self, exporting):
        """Whether the network runs in the form MindSpore's ONNX exporter takes (the same function):
        each LSTM direction as its own kernel call, cLN's running sums as matrix products."""
        for _, cell in self.cells_and_names():
            if isinstance(cell, FusedLSTM):
                cell.one_direction_per_call = exporting
            if isinstance(cell, CumulativeLayerNorm):
                cell.cumsum_by_products = exporting

    def set_recompute(self, recompute):
        """Whether training recomputes the dual-path RNNs in the backward pass instead of keeping
        what their gradients need: the CPU's FusedLSTM recomputes just its kernel workspace
        (LSTMKernel), other RNNs their whole PathRNN (Cell.recompute)."""
        for block in self.mask_estimator.blocks:
            for path in (block.intra, block.inter):
                if isinstance(path.rnn, FusedLSTM):
                    path.rnn.recompute = recompute
                elif recompute:
                    path.recompute()


# The same network, run two more ways: in less memory (a loop over one dual-path block) and as a
# stream (one chunk hop at a time, its state carried between calls). Equality tests keep the three
# runners computing one function (tests/test_model.py, tests/test_streaming.py).


class BlockLoopNetwork(nn.Cell):
    """A DPRNN for inference, the same function in less memory on CPU: its dual-path blocks run as
    a graph loop over one block, which is given each block's weights in turn.

    MindSpore's CPU LSTM kernel keeps a scratch buffer for the gates of every step of all its
    sequences for as long as the compiled graph lives; unrolled, the default model holds twelve of
    them (~0.2 GB each for 4 s of audio); in the loop, two.  docs/performance.md, "Inference
    memory".  The blocks' weights are copied when this is built: build it after loading them.
    mixture [B, T] -> [B, C, T].
    """

    def __init__(self, net):
        super().__init__(auto_prefix=False)  # the network's own parameter names stay as they are
        self.net = net
        blocks = net.mask_estimator.blocks
        self.num_blocks = len(blocks)
        self.block = copy.deepcopy(blocks[0])
        for param in self.block.get_parameters():
            param.name = "block_loop." + param.name
        self.loop_weights = ms.ParameterTuple(self.block.get_parameters())
        # each weight of the block over all blocks, [num_blocks, ...], stacked once: stacking them
        # in the graph at every call took 0.19 GB more at 4 s (docs/performance.md)
        per_block = [list(block.get_parameters()) for block in blocks]
        self.stacked_weights = ms.ParameterTuple([
            ms.Parameter(ops.stack([weights[k] for weights in per_block]), name=f"block_loop.stacked.{k}",
                         requires_grad=False)
            for k in range(len(self.loop_weights))])

    def construct(self, mixture):
        frames = self.net.encode(mixture)
        x = self.net.mask_estimator.chunks(frames)
        b = ms.Tensor(0, ms.int32)
        while b < self.num_blocks:
            for weight, stacked in zip(self.loop_weights, self.stacked_weights):
                ops.assign(weight, stacked[b])
            x = self.block(x)
            b = b + 1
        masks = self.net.mask_estimator.masks_from_chunks(x, frames.shape[1])
        return self.net.decode(frames, masks, mixture.shape[1])


def _zeros(*shape):
    return ops.zeros(shape, ms.float32)


# ChunkStep's state is a flat tuple of tensors (a compiled graph's inputs and outputs); these two
# are the only places that know where each part of it sits.
def unpack_state(state, rnn_sizes):
    """The flat state -> (encoder norm totals (3 tensors), previous frames' bottleneck features
    [1, P, D], previous frames' encoder output [1, P, N], previous chunk's second half [1, P, C*D],
    decoder overlap into the next frame [C, H], blocks). blocks: per dual-path block, (intra-chunk
    norm totals (3), inter-chunk RNN state ((h, c) or h, [1, K, hidden]), inter-chunk norm totals
    (3)); rnn_sizes: 2 for an LSTM block, 1 otherwise."""
    blocks, at = (), 7
    for size in rnn_sizes:
        rnn = state[at + 3:at + 3 + size]
        blocks += ((state[at:at + 3], rnn if size == 2 else rnn[0], state[at + 3 + size:at + 6 + size]),)
        at += 6 + size
    return state[:3], state[3], state[4], state[5], state[6], blocks


def pack_state(norm_totals, previous_features, previous_frames, chunk_tail, decoder_tail, blocks):
    """unpack_state's parts -> the flat state."""
    flat = norm_totals + (previous_features, previous_frames, chunk_tail, decoder_tail)
    for intra_totals, rnn_state, inter_totals in blocks:
        flat += intra_totals + (rnn_state if isinstance(rnn_state, tuple) else (rnn_state,)) + inter_totals
    return flat


class ChunkStep(nn.Cell):
    """One chunk hop of a causal DPRNN, its state in and out: fixed shapes, so one compiled graph.

    Step g encodes frames [gP, (g+1)P) (P = K/2), forms chunk g from them and the previous P
    frames (zeros before the first: split_chunks' padding), runs it through the dual-path blocks
    and completes the overlap-add of frames [(g-1)P, gP), which it masks and decodes.
    samples [1, (P + 1) H]: the input samples of the new frames (H the stride);
    valid [1, P, 1]: 1 for frames of the recording, 0 for the padding after its end;
    state: unpack_state's layout, flat.
    -> (output samples of frames [(g-1)P, gP) [C, P H], state).
    """

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.hop = net.encoder.hop
        self.chunk_hop = net.mask_estimator.chunk_size // 2
        self.rnn_sizes = tuple(2 if block.inter.rnn.is_lstm else 1 for block in net.mask_estimator.blocks)

    def initial_state(self):
        """The state before the first step: zeros."""
        estimator = self.net.mask_estimator
        P, K = self.chunk_hop, estimator.chunk_size
        channels, speakers = estimator.bottleneck.weight.shape[0], estimator.num_spks
        filters = self.net.encoder.weight.shape[0]
        totals = (_zeros(1, 1, 1, 1),) * 3
        blocks = tuple((totals, (_zeros(1, K, block.inter.rnn.hidden_size),) * 2 if size == 2
                        else _zeros(1, K, block.inter.rnn.hidden_size), totals)
                       for block, size in zip(estimator.blocks, self.rnn_sizes))
        return pack_state((_zeros(1, 1, 1),) * 3, _zeros(1, P, channels), _zeros(1, P, filters),
                          _zeros(1, P, speakers * channels), _zeros(speakers, self.hop), blocks)

    @ms.jit  # compiled in PyNative too: eager, each of its ~100 operations cost ~2 ms here
    def construct(self, samples, valid, *state):
        estimator = self.net.mask_estimator
        norm_totals, previous_features, previous_frames, chunk_tail, decoder_tail, blocks = \
            unpack_state(state, self.rnn_sizes)
        frames = self.net.frames(samples) * valid                               # [1, P, N]
        x, norm_totals = estimator.norm.step(frames, norm_totals)
        features = estimator.bottleneck(x) * valid                              # [1, P, D]
        x = ops.concat((previous_features, features), axis=1).expand_dims(1)    # [1, 1, K, D]
        new_blocks, i = (), 0
        for block in estimator.blocks:  # (zip over the cells would leave the graph)
            intra_totals, rnn_state, inter_totals = blocks[i]
            i += 1
            x, _, intra_totals = block.intra.step(x, None, intra_totals)
            x, rnn_state, inter_totals = block.inter.step(x, rnn_state, inter_totals)
            new_blocks += ((intra_totals, rnn_state, inter_totals),)
        x = estimator.speaker_features(x).squeeze(1)                            # [1, K, C*D]
        masks = estimator.masks(chunk_tail + x[:, :self.chunk_hop])             # [1, C, P, N]
        pieces = self.net.decode(previous_frames, masks, (self.chunk_hop + 1) * self.hop)[0]  # [C, (P + 1) H]
        out = ops.concat((pieces[:, :self.hop] + decoder_tail, pieces[:, self.hop:-self.hop]), axis=1)
        return (out,) + pack_state(norm_totals, features, frames, x[:, self.chunk_hop:], pieces[:, -self.hop:],
                                   new_blocks)


INITS = ("asteroid", "zoo")


def check_model_args(kernel_size, rnn_type, norm, K, num_spks, init, causal):
    """Raise ValueError naming the setting when the model cannot be built as asked: the one check
    of the model settings (config.py applies it to every config and checkpoint)."""
    if causal and norm == "gln":
        raise ValueError("causal: true needs norm cgln or ln (gln's statistics span the whole utterance): "
                         "add --norm cgln")
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
    if rnn_type not in RNNS:
        raise ValueError(f"rnn_type must be one of {sorted(RNNS)}, got {rnn_type!r}")
    if kernel_size < 2 or kernel_size % 2:
        raise ValueError(f"kernel_size must be even and at least 2 (the stride is half of it), got {kernel_size}")
    if K < 2:
        raise ValueError(f"K (chunk length) must be at least 2, got {K}")
    if not 1 <= num_spks <= 8:  # PIT tries every permutation: 8! already 40,320
        raise ValueError(f"num_spks must be 1 to 8, got {num_spks}")


def count_parameters(net):
    """Number of trainable scalars."""
    return sum(p.size for p in net.trainable_params())
