"""Layers that run the network's operations fast and deterministically on MindSpore's CPU kernels.

Each keeps the parameters (shapes, names, initialisation) of the MindSpore layer it stands for, so
checkpoints load either way; model.py builds the paper's network from them. Why each exists is
measured in docs/performance.md (MindSpore 2.10's CPU kernels).
"""
import math

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Uniform, initializer
from mindspore.ops.operations._grad_ops import LSTMGrad


def expand_as(t, x):
    """t broadcast to x's shape by its own node, for an Add or Sub: MindSpore's CPU Add/Sub
    broadcast several times slower than BroadcastTo followed by the same-shape op (more so in a
    graph compiled for any length).  For a Mul only in inference: in training the Mul's gradient
    would keep the full-size copy and raise the training peak."""
    return ops.broadcast_to(t, x.shape)


class LSTMKernel(nn.Cell):
    """MindSpore's CPU LSTM kernel for both directions in one call, its workspace recomputed.

    The training kernel keeps a workspace per step, sequence and direction for the backward pass
    (hundreds of MB per RNN for seconds of audio) and runs slower than the inference kernel.
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
    one; one call is about twice as fast. Same parameters, same names, same function. With
    `recompute` the kernel's workspace is recomputed in the backward pass (LSTMKernel); without it
    the training kernel keeps it: a faster training step for more memory (docs/performance.md).
    With `one_direction_per_call` (set for ONNX export, whose LSTM exporter takes one direction
    only) each direction is its own kernel call, the backward one on the reversed sequence.
    x [steps, batch, I] -> ([steps, batch, directions * H], None); given a state hx (h, c)
    [directions, batch, H] (streaming), it continues from it and returns the new one instead of None.
    """

    def __init__(self, input_size, hidden_size, bidirectional, recompute=True):
        super().__init__(input_size, hidden_size, num_layers=1, batch_first=False,
                         bidirectional=bidirectional)
        self.directions = 2 if bidirectional else 1
        self.hidden = hidden_size
        self.recompute = recompute
        self.one_direction_per_call = False
        self.kernel = LSTMKernel(input_size, hidden_size, bidirectional)
        self.direction_kernel = ops.LSTM(input_size, hidden_size, 1, True, False, 0.0)
        self.direction_kernel.add_prim_attr("is_training", False)

    def construct(self, x, hx=None):
        if self.one_direction_per_call:
            return self._per_direction(x), None
        weights = self._kernel_weights(range(self.directions))
        if hx is not None:
            y, h, c, _, _ = self.kernel.infer_kernel(x, hx[0], hx[1], weights)
            return y, (h, c)
        state = ops.zeros((self.directions, x.shape[1], self.hidden), x.dtype)
        if self.training and not self.recompute:
            return self.kernel.train_kernel(x, state, state, weights)[0], None
        return self.kernel(x, state, weights), None

    def _kernel_weights(self, directions):
        # the kernel's flat weight layout: all input weights, all recurrent weights, all biases
        return ops.concat(
            [self.w_ih_list[d].view(-1) for d in directions] + [self.w_hh_list[d].view(-1) for d in directions]
            + [self.b_ih_list[d] + self.b_hh_list[d] for d in directions]).view(-1, 1, 1)

    def _per_direction(self, x):
        state = ops.zeros((1, x.shape[1], self.hidden), x.dtype)
        outputs = []
        for d in range(self.directions):
            weights = self._kernel_weights([d])
            sequence = x if d == 0 else ops.reverse(x, [0])
            out = self.direction_kernel(sequence, state, state, weights)[0]
            outputs.append(out if d == 0 else ops.reverse(out, [0]))
        return ops.concat(outputs, axis=-1)


class AscendLSTM(nn.LSTM):
    """nn.LSTM (one layer, time-major) as MindSpore builds it for Ascend: one DynamicRNN call per
    direction, the backward one on the reversed sequence, in float16 (DynamicRNN takes float16
    only, so an Ascend MindIR's LSTMs run in float16 whatever the converter's precision mode).

    Built on any host, so the Ascend form of a network can be exported from a CPU; it runs only on
    Ascend (DynamicRNN has no CPU or GPU kernel). Same parameters and names as nn.LSTM, whose gate
    blocks are PyTorch's i, f, g, o; DynamicRNN's weight [I + H, 4H] and bias [4H] take them in its
    documented output order i, j (the cell input, nn.LSTM's g), f, o.
    x [steps, batch, I] -> ([steps, batch, directions * H], None); given a state hx (h, c)
    [directions, batch, H], it continues from it and returns the new one instead of None.
    """

    def __init__(self, input_size, hidden_size, bidirectional):
        super().__init__(input_size, hidden_size, num_layers=1, batch_first=False,
                         bidirectional=bidirectional)
        self.directions = 2 if bidirectional else 1
        self.hidden = hidden_size
        self.dynamic_rnn = ops.DynamicRNN()

    def construct(self, x, hx=None):
        outputs, last_h, last_c = [], [], []
        for d in range(self.directions):
            sequence = x if d == 0 else ops.reverse(x, [0])
            if hx is None:
                h0 = ops.zeros((1, x.shape[1], self.hidden), ms.float16)
                c0 = h0
            else:
                h0, c0 = hx[0][d:d + 1].astype(ms.float16), hx[1][d:d + 1].astype(ms.float16)
            y, h, c = self.dynamic_rnn(sequence.astype(ms.float16), self._weight(d), self._bias(d), None,
                                       h0, c0)[:3]
            y = y.astype(x.dtype)
            outputs.append(y if d == 0 else ops.reverse(y, [0]))
            last_h.append(h[-1:])
            last_c.append(c[-1:])
        y = ops.concat(outputs, axis=-1)
        if hx is None:
            return y, None
        return y, (ops.concat(last_h).astype(x.dtype), ops.concat(last_c).astype(x.dtype))

    def _gates_ijfo(self, t):
        """nn.LSTM's gate blocks i, f, g, o along axis 0 -> DynamicRNN's i, j (= g), f, o."""
        h = self.hidden
        return ops.concat((t[:h], t[2 * h:3 * h], t[h:2 * h], t[3 * h:]))

    def _weight(self, d):
        """[I + H, 4H] float16: input and recurrent weights stacked along the inputs."""
        weight = ops.concat((self._gates_ijfo(self.w_ih_list[d]), self._gates_ijfo(self.w_hh_list[d])), axis=1)
        return weight.transpose(1, 0).astype(ms.float16)

    def _bias(self, d):
        return self._gates_ijfo(self.b_ih_list[d] + self.b_hh_list[d]).astype(ms.float16)


class DynamicRNNOnCPU(nn.Cell):
    """ops.DynamicRNN's documented function in numpy, to run AscendLSTM where DynamicRNN has no kernel
    (eager mode only): what tells, off Ascend, that the weights reach an Ascend MindIR correctly and
    what its float16 arithmetic costs.

    Written from the primitive's documentation: x [T, B, I], w [I + H, 4H], b [4H], init_h and
    init_c [1, B, H], all float16; per step, [x_t, h] @ w + b splits into the gates in the order of
    the documented outputs i, j, f, o (forget_bias 0); c = f * c + i * j, h = o * tanh(c), with
    sigmoid on i, f, o and tanh on j. Outputs y, output_h, output_c [T, B, H] in float16; h and c are
    rounded to float16 after every step, as the documented float16 outputs and state inputs are, and
    the products summed in float32. How the device rounds inside a step is not documented.
    """

    def construct(self, x, w, b, seq_length, init_h, init_c):
        x, w, b = (t.asnumpy().astype(np.float32) for t in (x, w, b))
        h, c = init_h.asnumpy()[0].astype(np.float32), init_c.asnumpy()[0].astype(np.float32)
        hidden = h.shape[-1]
        outputs = []
        for x_t in x:
            gates = np.concatenate([x_t, h], axis=-1) @ w + b
            i, j, f, o = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
            c = _float16(_sigmoid(f) * c + _sigmoid(i) * np.tanh(j))
            h = _float16(_sigmoid(o) * np.tanh(c))
            outputs.append((h, c))
        y = ms.Tensor(np.stack([h for h, _ in outputs]).astype(np.float16))
        return y, y, ms.Tensor(np.stack([c for _, c in outputs]).astype(np.float16))


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _float16(v):
    return v.astype(np.float16).astype(np.float32)


def emulate_dynamic_rnn(net):
    """Run every AscendLSTM of net with DynamicRNNOnCPU (eager mode); returns net."""
    for _, cell in net.cells_and_names():
        if isinstance(cell, AscendLSTM):
            cell.dynamic_rnn = DynamicRNNOnCPU()
    return net


def gpu_lstm(input_size, hidden_size, bidirectional):
    """nn.LSTM as MindSpore builds it on a GPU host, from any CPU or GPU host.

    nn.LSTM lays out ops.LSTM's flat weights for the device it is built on: on GPU the input and
    recurrent biases stay apart, on CPU they are summed. A GPU MindIR exported from a CPU host needs
    the GPU layout.
    """
    lstm = nn.LSTM(input_size, hidden_size, num_layers=1, batch_first=False, bidirectional=bidirectional)
    if not hasattr(lstm.rnn, "is_gpu"):
        raise ValueError("the GPU form of an LSTM cannot be built on an Ascend host (nn.LSTM builds "
                         "DynamicRNN there): export it on a CPU or GPU host")
    lstm.rnn.is_gpu = True
    return lstm


RNNS = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}
# the device each form of the LSTM is built for: MindSpore's CPU kernel (both directions in one call,
# layers.FusedLSTM), the GPU layout of ops.LSTM, Ascend's DynamicRNN
LSTM_FORMS = {"CPU": FusedLSTM, "GPU": gpu_lstm, "Ascend": AscendLSTM}


def recurrent_layer(rnn_type, input_size, hidden_size, bidirectional, lstm_for):
    """Time-major one-layer RNN: [steps, batch, I] -> ([steps, batch, directions * H], state).

    lstm_for: the device target ("CPU", "GPU", "Ascend") an LSTM is built for (LSTM_FORMS), or None
    for nn.LSTM as MindSpore builds it on this host. GRU and RNN are MindSpore's on every device."""
    if rnn_type == "LSTM" and lstm_for is not None:
        return LSTM_FORMS[lstm_for](input_size, hidden_size, bidirectional)
    return RNNS[rnn_type](input_size, hidden_size, num_layers=1, batch_first=False,
                          bidirectional=bidirectional)


# x [M, I] @ w[O, I].T without a Transpose node, forward or backward
matmul_transposed = ops.MatMul(transpose_b=True)
# [M, K] @ [K, N] as the MatMul primitive: ops.matmul exports as MatMulExt, which no device documents
matmul = ops.MatMul()


class Linear(nn.Dense):
    """nn.Dense over the last axis of any input, bias added by a plain Add: the gradient of
    nn.Dense's BiasAdd is far slower than the Add's on CPU.  x [..., I] -> [..., O]."""

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


def upper_ones(size, diagonal):
    """[size, size] float32 ones on and above (or only above) the diagonal: a graph constant."""
    return ms.Tensor(np.triu(np.ones((size, size), np.float32), 0 if diagonal else 1))


def cumsum_by_products(v):
    """Cumulative sum along axis 1 of v [B, T] in matrix products only (MindSpore's ONNX exporter has
    no CumSum): within blocks of about sqrt(T) steps, plus the totals of the blocks before.
    [B, T] -> [B, T]."""
    batch, steps = v.shape
    block = math.isqrt(steps - 1) + 1
    blocks = (steps + block - 1) // block
    padded = pad_axis(v, 1, 0, blocks * block - steps).reshape(batch, blocks, block)
    within = ops.matmul(padded, upper_ones(block, True))                    # [B, blocks, block]
    totals = within[:, :, block - 1:].reshape(batch, blocks)  # not [..., -1]: exported as an empty slice
    before = ops.matmul(totals, upper_ones(blocks, False))                   # [B, blocks]
    return (within + before.expand_dims(-1)).reshape(batch, -1)[:, :steps]


def pad_axis(x, axis, left, right):
    """Zeros before and after one axis.

    The Pad primitive rather than ops.pad: in MindSpore 2.10's CPU graph mode the gradient of
    ops.pad (PadV3) changes from one call to the next at the same inputs, silently corrupting
    training; concatenating zeros instead breaks the LSTM's gradient there.
    """
    paddings = [(0, 0)] * x.ndim
    paddings[axis] = (left, right)
    return ops.Pad(tuple(paddings))(x)
