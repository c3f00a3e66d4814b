"""DPRNN: Dual-Path RNN for single-channel speech separation.

Luo, Chen & Yoshioka, "Dual-path RNN: efficient long sequence modeling for time-domain
single-channel speech separation", ICASSP 2020 (arXiv:1910.06379).

Shapes: B batch, T samples, C speakers, N encoder filters, L encoder frames,
D bottleneck channels, K chunk length, S number of chunks.

    mixture [B, T]
      -> Encoder (Conv1d + ReLU)                         [B, N, L]
      -> MaskEstimator (norm, bottleneck, chunking,
         DualPathBlock x num_layers, overlap-add, gates) [B, C, N, L]
      -> masks * encoder output -> Decoder (ConvTranspose1d) [B, C, T]

The layer set and initialisers are those of the MindSpore model-zoo DPRNN, without its bugs:
the norms' gain and bias are trained, `rnn_type` and `norm` are honoured, and no dead init loop.
"""
import math

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeUniform, Uniform, XavierNormal, initializer
from mindspore.ops.operations._grad_ops import LSTMGrad

EPS = 1e-8


def expand_as(t, x):
    """t broadcast to x's shape by its own node, for an Add or Sub: MindSpore's CPU Add/Sub
    broadcast ~4x slower than BroadcastTo followed by the same-shape op (~10x in a graph compiled
    for any length).  For a Mul only in inference: in training the Mul's gradient would keep the
    full-size copy (the default model's training peak grew from 7.7 to 8.5 GB)."""
    return ops.broadcast_to(t, x.shape)


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
        # sums over one flattened axis divided by the count: MindSpore's CPU ReduceMean is ~8x
        # slower than ReduceSum, and a sum over several axes ~1.5x slower than over one
        flat = x.reshape(x.shape[0], -1)
        count = flat.shape[1]
        centred = flat - expand_as(flat.sum(axis=1, keepdims=True) / count, flat)
        var = (centred * centred).sum(axis=1, keepdims=True) / count
        scale = ops.rsqrt(var + EPS).reshape((x.shape[0],) + (1,) * (x.ndim - 1)) * self.gain
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


class CumulativeLayerNorm(_ChannelAffine):
    """cLN: causal statistics over everything up to and including each step of axis 1.

    x [B, L, N] (steps are frames) or [B, S, K, N] (steps are chunks) -> same shape.
    """

    def construct(self, x):
        axes = tuple(range(2, x.ndim))
        steps = x.shape[1]
        values_per_step = x.size // (x.shape[0] * steps)
        count = (ops.arange(1, steps + 1, dtype=ms.float32) * values_per_step).reshape(
            (1, steps) + (1,) * len(axes))
        mean = ops.cumsum(x.sum(axis=axes, keepdims=True), axis=1) / count
        mean_sq = ops.cumsum((x ** 2).sum(axis=axes, keepdims=True), axis=1) / count
        var = ops.relu(mean_sq - mean ** 2)
        return (x - mean) / ops.sqrt(var + EPS) * self.gain + self.bias


NORMS = {"gln": GlobalLayerNorm, "cln": CumulativeLayerNorm, "ln": ChannelLayerNorm}
RNNS = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}


class LSTMKernel(nn.Cell):
    """MindSpore's CPU LSTM kernel for both directions in one call, its workspace recomputed.

    The training kernel keeps a workspace of ~2 KB per step, sequence and direction for the
    backward pass (0.5 GB per RNN for 4 s of audio) and runs ~2x slower than the inference kernel.
    Here the forward pass runs the inference kernel and keeps nothing; the backward pass runs the
    training kernel again for the workspace, then LSTMGrad, so one workspace exists at a time.
    x [steps, batch, I], state [directions, batch, H], weights [W, 1, 1]
    -> [steps, batch, directions * H].
    """

    def __init__(self, input_size, hidden_size, bidirectional):
        super().__init__()
        args = (input_size, hidden_size, 1, True, bidirectional, 0.0)
        self.infer_kernel = ops.LSTM(*args)
        self.infer_kernel.add_prim_attr("is_training", False)
        self.train_kernel = ops.LSTM(*args)
        self.grad_kernel = LSTMGrad(*args)

    def construct(self, x, state, weights):
        return self.infer_kernel(x, state, state, weights)[0]

    def bprop(self, x, state, weights, out, dout):
        # depend on dout: otherwise the graph may run this early, holding every workspace at once
        y, hy, cy, workspace, _ = self.train_kernel(ops.depend(x, dout), state, state, weights)
        dx, _, _, dweights = self.grad_kernel(x, state, state, weights, y, hy, cy, dout,
                                              ops.zeros_like(hy), ops.zeros_like(cy), workspace)
        return dx, ops.zeros_like(state), dweights


class FusedLSTM(nn.LSTM):
    """nn.LSTM (one layer, time-major) run as one CPU LSTM kernel call for both directions.

    nn.LSTM calls the kernel once per direction and reverses the sequences around the backward
    one; one call is 2-2.5x faster. Same parameters, same names, same function. With `recompute`
    the kernel's workspace is recomputed in the backward pass (LSTMKernel); without it the
    training kernel keeps it: ~15% faster a training step, ~0.5 GB more per RNN and 4 s of audio.
    x [steps, batch, I] -> ([steps, batch, directions * H], None).
    """

    def __init__(self, input_size, hidden_size, bidirectional, recompute=True):
        super().__init__(input_size, hidden_size, num_layers=1, batch_first=False,
                         bidirectional=bidirectional)
        self.directions = 2 if bidirectional else 1
        self.hidden = hidden_size
        self.recompute = recompute
        self.kernel = LSTMKernel(input_size, hidden_size, bidirectional)

    def construct(self, x):
        # the kernel's flat weight layout: all input weights, all recurrent weights, all biases
        weights = ops.concat(
            [w.view(-1) for w in self.w_ih_list] + [w.view(-1) for w in self.w_hh_list]
            + [b_ih + b_hh for b_ih, b_hh in zip(self.b_ih_list, self.b_hh_list)]).view(-1, 1, 1)
        state = ops.zeros((self.directions, x.shape[1], self.hidden), x.dtype)
        if self.training and not self.recompute:
            return self.kernel.train_kernel(x, state, state, weights)[0], None
        return self.kernel(x, state, weights), None


def recurrent_layer(rnn_type, input_size, hidden_size, bidirectional):
    """Time-major one-layer RNN: [steps, batch, I] -> ([steps, batch, directions * H], state)."""
    if rnn_type == "LSTM" and ms.get_context("device_target") == "CPU":
        return FusedLSTM(input_size, hidden_size, bidirectional)
    return RNNS[rnn_type](input_size, hidden_size, num_layers=1, batch_first=False,
                          bidirectional=bidirectional)


# x [M, I] @ w[O, I].T without a Transpose node (forward or backward): ~15% faster on CPU
matmul_transposed = ops.MatMul(transpose_b=True)


class Linear(nn.Dense):
    """nn.Dense over the last axis of any input, bias added by a plain Add: the gradient of
    nn.Dense's BiasAdd is ~50x slower than the Add's on CPU.  x [..., I] -> [..., O]."""

    def construct(self, x):
        y = matmul_transposed(x.reshape(-1, self.in_channels), self.weight)
        y = y + expand_as(self.bias, y)
        return y.reshape(x.shape[:-1] + (self.out_channels,))


class PReLU(nn.Cell):
    """nn.PReLU (one slope shared by all channels, 0.25 at start, same parameter name) written
    elementwise.  nn.PReLU's CPU gradient of the slope sums in thread order, so it changes from
    one call to the next at the same inputs and two runs with one seed drift apart (and a resumed
    run from the one it continues); this form's gradient is a deterministic sum.  x [...] -> [...]
    """

    def __init__(self):
        super().__init__()
        self.w = Parameter(ms.Tensor([0.25], ms.float32), name="w")

    def construct(self, x):
        return ops.relu(x) - self.w * ops.relu(-x)


class PointwiseConv(nn.Cell):
    """1x1 convolution of channels-last input as one matrix product: x [..., I] -> [..., O].

    The weight keeps nn.Conv1d/nn.Conv2d's [O, I, 1, 1] shape and initialisation, so checkpoints
    of channels-first models load unchanged.
    """

    def __init__(self, in_channels, out_channels, has_bias, weight_init):
        super().__init__()
        self.weight = Parameter(initializer(weight_init, [out_channels, in_channels, 1, 1],
                                            ms.float32), name="weight")
        self.bias = (Parameter(initializer(Uniform(1 / math.sqrt(in_channels)), [out_channels],
                                           ms.float32), name="bias") if has_bias else None)

    def construct(self, x):
        out_channels, in_channels = self.weight.shape[:2]
        y = matmul_transposed(x.reshape(-1, in_channels), self.weight.reshape(out_channels, -1))
        if self.bias is not None:
            y = y + expand_as(self.bias, y)
        return y.reshape(x.shape[:-1] + (out_channels,))


def pad_axis(x, axis, left, right):
    """Zeros before and after one axis.

    The Pad primitive rather than ops.pad: in MindSpore 2.10's CPU graph mode the gradient of
    ops.pad (PadV3) changes from one call to the next at the same inputs, silently corrupting
    training; concatenating zeros instead breaks the LSTM's gradient there.
    """
    paddings = [(0, 0)] * x.ndim
    paddings[axis] = (left, right)
    return ops.Pad(tuple(paddings))(x)


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
    CPU Conv2D took ~30 ms per training step for this 4-MFLOP job on the demo model.

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
        pieces = ops.matmul(frames.reshape(-1, channels), self.weight.reshape(channels, -1))
        pieces = pieces.reshape(batch, length, -1)                             # [B, L, W]
        first, second = pieces[:, :, :self.hop], pieces[:, :, self.hop:]      # [B, L, W/2]
        # each frame's first half lands on its own hop, the second half on the next one (slices
        # and a concat: zero-padding both halves took longer in MindSpore's CPU profile)
        overlapped = first[:, 1:] + second[:, :-1]                             # [B, L - 1, W/2]
        return ops.concat((first[:, :1], overlapped, second[:, -1:]), axis=1).reshape(batch, -1)


def split_chunks(x, chunk_size):
    """Cut frames into chunks of K with hop K/2, zero-padded so every frame lies in two chunks.

    x [B, L, D] -> [B, S, K, D], S even.
    """
    batch, length, channels = x.shape
    hop = chunk_size // 2
    gap = chunk_size - (hop + length % chunk_size) % chunk_size
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

    def __init__(self, along, channels, hidden_channels, rnn_type, norm, bidirectional, dropout):
        super().__init__()
        self.to_sequences = self._TO_SEQUENCES[along]
        self.from_sequences = self._FROM_SEQUENCES[along]
        self.rnn = recurrent_layer(rnn_type, channels, hidden_channels, bidirectional)
        self.dropout = nn.Dropout(p=dropout)
        rnn_out = hidden_channels * (2 if bidirectional else 1)
        self.proj = Linear(rnn_out, channels, weight_init="HeUniform")
        self.norm = NORMS[norm](channels)

    def construct(self, x):
        seq = x.transpose(self.to_sequences)
        steps, batch, outer, channels = seq.shape
        out, _ = self.rnn(seq.reshape(steps, batch * outer, channels))
        out = self.proj(self.dropout(out)).reshape(steps, batch, outer, channels)
        return x + self.norm(out.transpose(self.from_sequences))


class DualPathBlock(nn.Cell):
    """Intra-chunk then inter-chunk PathRNN.  x [B, S, K, D] -> [B, S, K, D]."""

    def __init__(self, channels, hidden_channels, rnn_type, norm, bidirectional, dropout):
        super().__init__()
        args = (channels, hidden_channels, rnn_type, norm, bidirectional, dropout)
        self.intra = PathRNN("intra", *args)
        self.inter = PathRNN("inter", *args)

    def construct(self, x):
        return self.inter(self.intra(x))


class MaskEstimator(nn.Cell):
    """Encoder frames [B, L, N] -> non-negative masks [B, C, L, N].

    Works channels-last ([B, L, N], [B, S, K, D]) throughout: the RNN kernels want time-major
    sequences of channel vectors, so this layout leaves one transpose each way per RNN at most.
    """

    def __init__(self, in_channels, out_channels, hidden_channels, bn_channels, rnn_type, norm,
                 dropout, bidirectional, num_layers, K, num_spks):
        super().__init__()
        self.chunk_size = K
        self.num_spks = num_spks
        self.norm = NORMS[norm](in_channels)
        self.bottleneck = PointwiseConv(in_channels, bn_channels, False, "HeUniform")
        self.blocks = nn.SequentialCell([
            DualPathBlock(bn_channels, hidden_channels, rnn_type, norm, bidirectional, dropout)
            for _ in range(num_layers)])
        self.prelu = PReLU()
        self.to_speakers = PointwiseConv(bn_channels, bn_channels * num_spks, True, "HeUniform")
        self.output = PointwiseConv(bn_channels, bn_channels, True, "XavierUniform")
        self.output_gate = PointwiseConv(bn_channels, bn_channels, True, "XavierUniform")
        self.to_masks = PointwiseConv(bn_channels, out_channels, False, "HeUniform")

    def construct(self, frames):
        batch, length, _ = frames.shape
        x = self.bottleneck(self.norm(frames))                      # [B, L, D]
        x = self.blocks(split_chunks(x, self.chunk_size))           # [B, S, K, D]
        x = self.to_speakers(self.prelu(x))                         # [B, S, K, C*D]
        x = overlap_add(x, length)                                  # [B, L, C*D]
        x = x.reshape(batch, length, self.num_spks, -1)             # [B, L, C, D]
        x = ops.tanh(self.output(x)) * ops.sigmoid(self.output_gate(x))
        masks = ops.relu(self.to_masks(x))                          # [B, L, C, N]
        return masks.transpose(0, 2, 1, 3)


class DPRNN(nn.Cell):
    """Mixture [B, T] -> separated sources [B, C, T], for any T >= kernel_size.

    The encoder has stride kernel_size / 2 (kernel_size even); the input is zero-padded at the end
    to a whole number of strides and the decoder's output cut back to T.
    """

    def __init__(self, in_channels=64, out_channels=64, hidden_channels=128, bn_channels=128,
                 kernel_size=2, rnn_type="LSTM", norm="gln", dropout=0.0, bidirectional=True,
                 num_layers=6, K=250, num_spks=2, init="asteroid"):
        super().__init__()
        check_model_args(in_channels, out_channels, kernel_size, rnn_type, norm, K, num_spks, init)
        self.kernel_size = kernel_size
        self.num_spks = num_spks
        self.encoder = Encoder(in_channels, kernel_size)
        self.mask_estimator = MaskEstimator(in_channels, out_channels, hidden_channels, bn_channels,
                                            rnn_type, norm, dropout, bidirectional, num_layers, K,
                                            num_spks)
        self.decoder = Decoder(in_channels, kernel_size)
        if init == "asteroid":
            self.init_like_asteroid()

    def init_like_asteroid(self):
        """Asteroid's initial weights instead of the model zoo's He-uniform ones (which the layers
        are built with): encoder and decoder filters Xavier-normal (Asteroid's free filterbank,
        8x smaller here), 1x1 convolutions and projections uniform in +-1/sqrt(fan_in) (PyTorch's
        default, 2.4x smaller).  With the zoo's weights the same training is 2.3 dB behind after
        its first epoch and about 1.5 dB after three (docs/performance.md, "Learning at equal
        updates with Asteroid").
        RNN weights, biases and norms start the same either way."""
        for _, cell in self.cells_and_names():
            if isinstance(cell, (PointwiseConv, Linear)):
                cell.weight.set_data(initializer(HeUniform(math.sqrt(5)), cell.weight.shape, ms.float32))
        for weight in (self.encoder.weight, self.decoder.weight):
            weight.set_data(initializer(XavierNormal(), weight.shape, ms.float32))

    def construct(self, mixture):
        batch, length = mixture.shape
        stride = self.encoder.hop
        hops = (length + stride - 1) // stride  # a whole number of strides covering T
        mixture = pad_axis(mixture, 1, 0, stride)[:, :hops * stride]
        frames = ops.relu(self.encoder(mixture))                        # [B, L, N]
        masks = self.mask_estimator(frames)                             # [B, C, L, N]
        frames = frames.expand_dims(1)                                  # [B, 1, L, N]
        if not self.training:  # see expand_as
            frames = expand_as(frames, masks)
        masked = masks * frames                                         # [B, C, L, N]
        sources = self.decoder(masked.reshape(batch * self.num_spks, -1, masked.shape[-1]))  # [B*C, T + pad]
        return sources.reshape(batch, self.num_spks, -1)[:, :, :length]

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


INITS = ("asteroid", "zoo")


def check_model_args(in_channels, out_channels, kernel_size, rnn_type, norm, K, num_spks, init):
    """Raise ValueError naming the setting when the model cannot be built as asked."""
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
    if rnn_type not in RNNS:
        raise ValueError(f"rnn_type must be one of {sorted(RNNS)}, got {rnn_type!r}")
    if out_channels != in_channels:
        raise ValueError(f"out_channels ({out_channels}) must equal in_channels ({in_channels}): "
                         "the masks multiply the encoder output")
    if kernel_size < 2 or kernel_size % 2:
        raise ValueError(f"kernel_size must be even and at least 2 (the stride is half of it), got {kernel_size}")
    if K < 2:
        raise ValueError(f"K (chunk length) must be at least 2, got {K}")
    if num_spks < 1:
        raise ValueError(f"num_spks must be at least 1, got {num_spks}")


def count_parameters(net):
    """Number of trainable scalars."""
    return sum(p.size for p in net.trainable_params())
