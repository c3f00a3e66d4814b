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
import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import initializer

EPS = 1e-8


class _ChannelAffine(nn.Cell):
    """Per-channel gain and bias for normalisations of [B, N, ...] tensors."""

    def __init__(self, channels):
        super().__init__()
        self.gain = Parameter(initializer("ones", [channels], ms.float32), name="gain")
        self.bias = Parameter(initializer("zeros", [channels], ms.float32), name="bias")

    def affine(self, x):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return x * self.gain.reshape(shape) + self.bias.reshape(shape)


class GlobalLayerNorm(_ChannelAffine):
    """gLN: one mean and variance per utterance over all channels and positions.

    x [B, N, L] or [B, N, K, S] -> same shape.
    """

    def construct(self, x):
        axes = tuple(range(1, x.ndim))
        mean = x.mean(axis=axes, keep_dims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keep_dims=True)
        return self.affine((x - mean) / ops.sqrt(var + EPS))


class CumulativeLayerNorm(_ChannelAffine):
    """cLN: causal statistics, over all channels (and in-chunk positions) up to each step of the last axis.

    x [B, N, L] (steps are frames) or [B, N, K, S] (steps are chunks) -> same shape.
    """

    def construct(self, x):
        axes = tuple(range(1, x.ndim - 1))
        steps = x.shape[-1]
        values_per_step = x.size // (x.shape[0] * steps)
        count = ops.arange(1, steps + 1, dtype=ms.float32) * values_per_step
        mean = ops.cumsum(x.sum(axis=axes, keepdims=True), axis=-1) / count
        mean_sq = ops.cumsum((x ** 2).sum(axis=axes, keepdims=True), axis=-1) / count
        var = ops.relu(mean_sq - mean ** 2)
        return self.affine((x - mean) / ops.sqrt(var + EPS))


class ChannelLayerNorm(_ChannelAffine):
    """LN: statistics over the channels at each position separately.

    x [B, N, L] or [B, N, K, S] -> same shape.
    """

    def construct(self, x):
        mean = x.mean(axis=1, keep_dims=True)
        var = ((x - mean) ** 2).mean(axis=1, keep_dims=True)
        return self.affine((x - mean) / ops.sqrt(var + EPS))


NORMS = {"gln": GlobalLayerNorm, "cln": CumulativeLayerNorm, "ln": ChannelLayerNorm}
RNNS = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}


def pad_last_axis(x, left, right):
    """Zeros before and after the last axis.

    The Pad primitive rather than ops.pad: in MindSpore 2.10's CPU graph mode the gradient of
    ops.pad (PadV3) changes from one call to the next at the same inputs, silently corrupting
    training; concatenating zeros instead breaks the LSTM's gradient there.
    """
    return ops.Pad(((0, 0),) * (x.ndim - 1) + ((left, right),))(x)


def split_chunks(x, chunk_size):
    """Cut frames into chunks of K with hop K/2, zero-padded so every frame lies in two chunks.

    x [B, D, L] -> [B, D, K, S].
    """
    batch, channels, length = x.shape
    hop = chunk_size // 2
    gap = chunk_size - (hop + length % chunk_size) % chunk_size
    x = pad_last_axis(x, hop, gap + hop)
    first = x[:, :, :-hop].reshape(batch, channels, -1, chunk_size)
    second = x[:, :, hop:].reshape(batch, channels, -1, chunk_size)
    chunks = ops.concat([first, second], axis=3).reshape(batch, channels, -1, chunk_size)
    return chunks.transpose(0, 1, 3, 2)


def overlap_add(chunks, length):
    """Inverse of `split_chunks` up to the overlap: sums the two chunks covering each frame.

    chunks [B, D, K, S] -> [B, D, length].
    """
    batch, channels, chunk_size, _ = chunks.shape
    hop = chunk_size // 2
    pairs = chunks.transpose(0, 1, 3, 2).reshape(batch, channels, -1, 2 * chunk_size)
    first = pairs[:, :, :, :chunk_size].reshape(batch, channels, -1)[:, :, hop:]
    second = pairs[:, :, :, chunk_size:].reshape(batch, channels, -1)[:, :, :-hop]
    return (first + second)[:, :, :length]


class PathRNN(nn.Cell):
    """An RNN along one axis of the chunks, projected back to D channels, normalised, plus residual.

    along="intra": each chunk's K frames are a sequence (local context);
    along="inter": the S chunks at each in-chunk position are a sequence (global context).
    x [B, D, K, S] -> [B, D, K, S].
    """

    # permutations to [B, outer, steps, D] and back
    _TO_SEQUENCES = {"intra": (0, 3, 2, 1), "inter": (0, 2, 3, 1)}
    _FROM_SEQUENCES = {"intra": (0, 3, 2, 1), "inter": (0, 3, 1, 2)}

    def __init__(self, along, channels, hidden_channels, rnn_type, norm, bidirectional, dropout):
        super().__init__()
        self.to_sequences = self._TO_SEQUENCES[along]
        self.from_sequences = self._FROM_SEQUENCES[along]
        self.rnn = RNNS[rnn_type](channels, hidden_channels, num_layers=1, batch_first=True,
                                  bidirectional=bidirectional)
        self.dropout = nn.Dropout(p=dropout)
        rnn_out = hidden_channels * (2 if bidirectional else 1)
        self.proj = nn.Dense(rnn_out, channels, weight_init="HeUniform")
        self.norm = NORMS[norm](channels)

    def construct(self, x):
        seq = x.transpose(self.to_sequences)
        batch, outer, steps, channels = seq.shape
        out, _ = self.rnn(seq.reshape(batch * outer, steps, channels))
        out = self.proj(self.dropout(out)).reshape(batch, outer, steps, channels)
        return x + self.norm(out.transpose(self.from_sequences))


class DualPathBlock(nn.Cell):
    """Intra-chunk then inter-chunk PathRNN.  x [B, D, K, S] -> [B, D, K, S]."""

    def __init__(self, channels, hidden_channels, rnn_type, norm, bidirectional, dropout):
        super().__init__()
        args = (channels, hidden_channels, rnn_type, norm, bidirectional, dropout)
        self.intra = PathRNN("intra", *args)
        self.inter = PathRNN("inter", *args)

    def construct(self, x):
        return self.inter(self.intra(x))


class MaskEstimator(nn.Cell):
    """Encoder frames [B, N, L] -> non-negative masks [B, C, N, L]."""

    def __init__(self, in_channels, out_channels, hidden_channels, bn_channels, rnn_type, norm,
                 dropout, bidirectional, num_layers, K, num_spks):
        super().__init__()
        self.chunk_size = K
        self.num_spks = num_spks
        self.norm = NORMS[norm](in_channels)
        self.bottleneck = nn.Conv1d(in_channels, bn_channels, 1, has_bias=False,
                                    weight_init="HeUniform")
        self.blocks = nn.SequentialCell([
            DualPathBlock(bn_channels, hidden_channels, rnn_type, norm, bidirectional, dropout)
            for _ in range(num_layers)])
        self.prelu = nn.PReLU()
        self.to_speakers = nn.Conv2d(bn_channels, bn_channels * num_spks, 1, pad_mode="valid",
                                     has_bias=True, weight_init="HeUniform")
        self.output = nn.Conv1d(bn_channels, bn_channels, 1, has_bias=True,
                                weight_init="XavierUniform")
        self.output_gate = nn.Conv1d(bn_channels, bn_channels, 1, has_bias=True,
                                     weight_init="XavierUniform")
        self.to_masks = nn.Conv1d(bn_channels, out_channels, 1, has_bias=False,
                                  weight_init="HeUniform")

    def construct(self, frames):
        batch, _, length = frames.shape
        x = self.bottleneck(self.norm(frames))                    # [B, D, L]
        x = self.blocks(split_chunks(x, self.chunk_size))        # [B, D, K, S]
        x = self.to_speakers(self.prelu(x))                       # [B, C*D, K, S]
        _, _, chunk_size, num_chunks = x.shape
        x = x.reshape(batch * self.num_spks, -1, chunk_size, num_chunks)
        x = overlap_add(x, length)                                # [B*C, D, L]
        x = ops.tanh(self.output(x)) * ops.sigmoid(self.output_gate(x))
        masks = ops.relu(self.to_masks(x))                        # [B*C, N, L]
        return masks.reshape(batch, self.num_spks, -1, length)


class DPRNN(nn.Cell):
    """Mixture [B, T] -> separated sources [B, C, T], for any T >= kernel_size.

    The encoder has stride kernel_size // 2; the input is zero-padded at the end to a whole number of
    strides and the decoder's output cut back to T.
    """

    def __init__(self, in_channels=64, out_channels=64, hidden_channels=128, bn_channels=128,
                 kernel_size=2, rnn_type="LSTM", norm="gln", dropout=0.0, bidirectional=True,
                 num_layers=6, K=250, num_spks=2):
        super().__init__()
        check_model_args(in_channels, out_channels, kernel_size, rnn_type, norm, K, num_spks)
        self.kernel_size = kernel_size
        self.stride = kernel_size // 2
        self.num_spks = num_spks
        self.encoder = nn.Conv1d(1, in_channels, kernel_size, stride=self.stride, pad_mode="valid",
                                 has_bias=False, weight_init="HeUniform")
        self.mask_estimator = MaskEstimator(in_channels, out_channels, hidden_channels, bn_channels,
                                            rnn_type, norm, dropout, bidirectional, num_layers, K,
                                            num_spks)
        self.decoder = nn.Conv1dTranspose(in_channels, 1, kernel_size, stride=self.stride,
                                          pad_mode="valid", has_bias=False,
                                          weight_init="HeUniform")

    def construct(self, mixture):
        batch, length = mixture.shape
        pad = (self.stride - (length - self.kernel_size) % self.stride) % self.stride
        mixture = pad_last_axis(mixture, 0, pad)
        frames = ops.relu(self.encoder(mixture.expand_dims(1)))      # [B, N, L]
        masks = self.mask_estimator(frames)                           # [B, C, N, L]
        masked = (masks * frames.expand_dims(1)).reshape(batch * self.num_spks, -1, frames.shape[-1])
        sources = self.decoder(masked)                                # [B*C, 1, T + pad]
        return sources.reshape(batch, self.num_spks, -1)[:, :, :length]


def check_model_args(in_channels, out_channels, kernel_size, rnn_type, norm, K, num_spks):
    """Raise ValueError naming the setting when the model cannot be built as asked."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
    if rnn_type not in RNNS:
        raise ValueError(f"rnn_type must be one of {sorted(RNNS)}, got {rnn_type!r}")
    if out_channels != in_channels:
        raise ValueError(f"out_channels ({out_channels}) must equal in_channels ({in_channels}): "
                         "the masks multiply the encoder output")
    if kernel_size < 2:
        raise ValueError(f"kernel_size must be at least 2 (stride is kernel_size // 2), got {kernel_size}")
    if K < 2:
        raise ValueError(f"K (chunk length) must be at least 2, got {K}")
    if num_spks < 1:
        raise ValueError(f"num_spks must be at least 1, got {num_spks}")


def count_parameters(net):
    """Number of trainable scalars."""
    return sum(p.size for p in net.trainable_params())
