"""DPRNN model: chunking, norms, layout of the dual-path RNNs, lengths, size, gradients, modes,
and the optimised pieces against plain MindSpore layers and the pre-optimisation model."""
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from checkpoint import load_weights
from layers import FusedLSTM, PReLU, cumsum_by_products
from model import (BlockLoopNetwork, ChannelLayerNorm, CumulativeLayerNorm, DPRNN, Decoder, Encoder, GlobalLayerNorm,
                   PathRNN, count_parameters, overlap_add, split_chunks)
from separation import Separator

pytestmark = pytest.mark.fast  # bash scripts/run_tests.sh --fast

DATA = Path(__file__).parent / "data"

# lstm_for as build_network sets it on CPU, where the tests run
SMALL = dict(in_channels=8, hidden_channels=6, bn_channels=10, num_layers=2, K=16, lstm_for="CPU")


def tensor(x):
    return ms.Tensor(np.asarray(x, np.float32))


@pytest.mark.parametrize("length", [1, 7, 8, 9, 15, 16, 17, 100, 251])
@pytest.mark.parametrize("chunk_size", [8, 9, 250])
def test_chunks_cover_every_frame_twice(pynative, length, chunk_size):
    x = np.random.default_rng(length).standard_normal((2, length, 3)).astype(np.float32)
    chunks = split_chunks(tensor(x), chunk_size)
    back = overlap_add(chunks, length).asnumpy()
    np.testing.assert_array_equal(back, 2 * x)


@pytest.mark.parametrize("length", [5, 250, 251, 1000])
def test_chunks_start_every_hop(pynative, length):
    """Chunk s holds frames [s*hop - hop, s*hop - hop + K) of the zero-extended input."""
    chunk_size, hop = 250, 125
    x = np.random.default_rng(0).standard_normal((1, length, 2)).astype(np.float32)
    chunks = split_chunks(tensor(x), chunk_size).asnumpy()
    assert chunks.shape[2] == chunk_size
    extended = np.zeros((1, hop + length + 3 * chunk_size, 2), np.float32)
    extended[:, hop:hop + length] = x
    for s in range(chunks.shape[1]):
        np.testing.assert_array_equal(chunks[:, s], extended[:, s * hop:s * hop + chunk_size])
    assert (chunks.shape[1] - 1) * hop + chunk_size >= hop + length + hop  # the end is covered twice


def _gln_ref(x, gain, bias):
    flat = x.reshape(x.shape[0], -1)
    shape = (-1,) + (1,) * (x.ndim - 1)
    norm = (x - flat.mean(1).reshape(shape)) / np.sqrt(flat.var(1).reshape(shape) + 1e-8)
    return norm * gain + bias


def _cln_ref(x, gain, bias):
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            seen = x[b, :t + 1]
            out[b, t] = (x[b, t] - seen.mean()) / np.sqrt(seen.var() + 1e-8) * gain + bias
    return out


def _ln_ref(x, gain, bias):
    norm = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-8)
    return norm * gain + bias


@pytest.mark.parametrize("norm_cls, reference", [(GlobalLayerNorm, _gln_ref),
                                                 (CumulativeLayerNorm, _cln_ref),
                                                 (ChannelLayerNorm, _ln_ref)])
@pytest.mark.parametrize("shape", [(2, 9, 4), (2, 3, 5, 4)])
def test_norms_match_numpy(pynative, norm_cls, reference, shape):
    """Channels last: [B, L, N] frames or [B, S, K, N] chunks."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    norm = norm_cls(shape[-1])
    gain, bias = rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    norm.gain.set_data(tensor(gain))
    norm.bias.set_data(tensor(bias))
    np.testing.assert_allclose(norm(tensor(x)).asnumpy(), reference(x.astype(np.float64), gain, bias),
                               rtol=1e-4, atol=1e-4)
    assert {p.name.split(".")[-1] for p in norm.trainable_params()} == {"gain", "bias"}


@pytest.mark.parametrize("along", ["intra", "inter"])
def test_path_rnn_runs_along_its_axis(pynative, along):
    """Each sequence (a chunk's K frames, or the S chunks at one position) goes through the RNN alone."""
    B, S, K, D = 2, 3, 5, 4
    path = PathRNN(along, D, 3, "LSTM", "ln", bidirectional=True, dropout=0.0, lstm_for="CPU")
    x = np.random.default_rng(2).standard_normal((B, S, K, D)).astype(np.float32)
    out = path(tensor(x)).asnumpy()
    for b in range(B):
        sequences = [x[b, s] for s in range(S)] if along == "intra" else [x[b, :, k] for k in range(K)]
        for i, seq in enumerate(sequences):                   # [steps, D]
            rnn_out, _ = path.rnn(tensor(seq[:, None]))        # time-major, one sequence
            expected = seq + path.norm(path.proj(rnn_out[:, 0])).asnumpy()
            got = out[b, i] if along == "intra" else out[b, :, i]
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_default_parameter_count():
    assert count_parameters(DPRNN()) == 3_650_945


@pytest.mark.parametrize("kernel_size, lengths", [(2, [2, 3, 249, 250, 251, 8000, 32001]),
                                                  (16, [16, 17, 23, 24, 1001])])
def test_output_length_equals_input_length(pynative, kernel_size, lengths):
    net = DPRNN(**dict(SMALL, K=250), kernel_size=kernel_size, num_spks=3)
    net.set_train(False)
    for length in lengths:
        mixture = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
        out = net(tensor(mixture)).asnumpy()
        assert out.shape == (2, 3, length)
        assert np.isfinite(out).all()


def _uniform_bound(weight):
    """The bound of a uniform draw, estimated from its spread (std = bound / sqrt(3))."""
    return weight.std() * np.sqrt(3)


@pytest.mark.parametrize("init", ["asteroid", "zoo"])
def test_initial_weights_follow_the_chosen_scheme(init):
    """The default configuration starts from Asteroid's weights (the cause of a 2.3 dB first-epoch
    gap to it, issue 12): filterbanks Xavier-normal, std sqrt(2 / (fan_in + fan_out)); 1x1
    convolutions and projections uniform in +-1/sqrt(fan_in). init: zoo keeps the model zoo's
    He-uniform +-sqrt(6 / fan_in) everywhere."""
    from config import load_config
    from checkpoint import build_network
    cfg = load_config([] if init == "asteroid" else ["--init", "zoo"], verbose=False)
    ms.set_seed(0)
    net = build_network(cfg.group("model"))
    params = {p.name: p.asnumpy() for p in net.trainable_params()}
    kernel, channels = cfg.kernel_size, cfg.in_channels
    for name in ("encoder.weight", "decoder.weight"):
        weight = params[name]
        assert weight.size == channels * kernel
        if init == "asteroid":
            assert weight.std() == pytest.approx(np.sqrt(2 / (kernel + channels * kernel)), rel=0.1), name
        else:
            assert _uniform_bound(weight) == pytest.approx(np.sqrt(6 / kernel), rel=0.1), name
    projections = [n for n in params if n.endswith(".weight") and (".proj." in n or n.startswith(
        ("mask_estimator.bottleneck", "mask_estimator.to_", "mask_estimator.output")))]
    assert len(projections) == 5 + 2 * cfg.num_layers
    for name in projections:
        fan_in = int(np.prod(params[name].shape[1:]))
        expected = 1 / np.sqrt(fan_in) if init == "asteroid" else (
            np.sqrt(6 / fan_in) if "output" not in name else np.sqrt(6 / (fan_in + params[name].shape[0])))
        assert np.abs(params[name]).max() <= expected
        assert _uniform_bound(params[name]) == pytest.approx(expected, rel=0.1), name


def test_unknown_settings_are_rejected():
    with pytest.raises(ValueError, match="norm"):
        DPRNN(norm="bn")
    with pytest.raises(ValueError, match="rnn_type"):
        DPRNN(rnn_type="lstm")
    with pytest.raises(ValueError, match="init"):
        DPRNN(init="he")


@pytest.mark.parametrize("rnn_type, norm", [("LSTM", "gln"), ("GRU", "cgln"), ("RNN", "ln")])
def test_every_parameter_gets_a_finite_nonzero_gradient(pynative, rnn_type, norm):
    ms.set_seed(3)
    net = DPRNN(**SMALL, rnn_type=rnn_type, norm=norm)
    rng = np.random.default_rng(3)
    mixture, target = tensor(rng.standard_normal((2, 100))), tensor(rng.standard_normal((2, 2, 100)))

    def loss_fn(x):
        return ((net(x) - target) ** 2).mean()

    params = net.trainable_params()
    _, grads = ms.value_and_grad(loss_fn, None, params)(mixture)
    for param, grad in zip(params, grads):
        grad = grad.asnumpy()
        assert np.isfinite(grad).all(), param.name
        assert np.abs(grad).max() > 0, param.name


def test_graph_mode_equals_pynative_mode():
    ms.set_seed(4)
    net = DPRNN(**SMALL)
    net.set_train(False)
    mixture = tensor(np.random.default_rng(4).standard_normal((2, 333)))
    ms.set_context(mode=ms.PYNATIVE_MODE)
    eager = net(mixture).asnumpy()
    ms.set_context(mode=ms.GRAPH_MODE)
    compiled = net(mixture).asnumpy()
    # fused graph kernels sum in another order than eager ones: equal to float rounding, well
    # within the 1e-4 the CPU optimisations are held to
    np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-4)


def test_mask_and_decoder_wiring(pynative):
    """Speaker c's output is the decoder applied to mask c times the encoder output."""
    net = DPRNN(**SMALL)
    net.set_train(False)
    mixture = tensor(np.random.default_rng(5).standard_normal((1, 64)))
    frames = ms.ops.relu(net.encoder(mixture))
    masks = net.mask_estimator(frames)
    out = net(mixture).asnumpy()
    for c in range(2):
        expected = net.decoder(masks[:, c] * frames).asnumpy()
        np.testing.assert_allclose(out[:, c], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel_size, frames", [(2, 7), (16, 5), (32, 40)])
def test_encoder_and_decoder_equal_mindspore_convolutions(pynative, kernel_size, frames):
    """Encoder and Decoder (framing and matrix products) compute nn.Conv1d / nn.Conv1dTranspose with
    the same weights, forward and backward, so checkpoints of the convolutional ones load and run."""
    rng = np.random.default_rng(kernel_size)
    length, channels = (frames + 1) * kernel_size // 2, 8
    mixture = tensor(rng.standard_normal((2, length)))
    encoder, decoder = Encoder(channels, kernel_size), Decoder(channels, kernel_size)
    conv = nn.Conv1d(1, channels, kernel_size, stride=kernel_size // 2, pad_mode="valid", has_bias=False)
    deconv = nn.Conv1dTranspose(channels, 1, kernel_size, stride=kernel_size // 2, pad_mode="valid",
                                has_bias=False)
    conv.weight.set_data(encoder.weight.value())
    deconv.weight.set_data(decoder.weight.value())
    expected_frames = conv(mixture.expand_dims(1))                              # [B, N, L]
    np.testing.assert_allclose(encoder(mixture).asnumpy(), expected_frames.asnumpy().transpose(0, 2, 1),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(decoder(expected_frames.transpose(0, 2, 1)).asnumpy(),
                               deconv(expected_frames).asnumpy()[:, 0], rtol=1e-5, atol=1e-5)
    weights = tensor(rng.standard_normal((2, length)))

    def ours(x):
        return (decoder(ms.ops.relu(encoder(x))) * weights).sum()

    def theirs(x):
        return (deconv(ms.ops.relu(conv(x.expand_dims(1))))[:, 0] * weights).sum()

    grads = ms.grad(ours, grad_position=0, weights=[encoder.weight, decoder.weight])(mixture)
    expected = ms.grad(theirs, grad_position=0, weights=[conv.weight, deconv.weight])(mixture)
    for got, want in zip([grads[0], *grads[1]], [expected[0], *expected[1]]):
        np.testing.assert_allclose(got.asnumpy(), want.asnumpy(), rtol=1e-4, atol=1e-4)


def test_odd_kernels_are_refused():
    with pytest.raises(ValueError, match="kernel_size must be even"):
        DPRNN(kernel_size=3)


def test_graph_mode_gradients_are_repeatable_and_correct(graph):
    """Guards against MindSpore CPU kernels whose gradient changes from call to call (ops.pad's did):
    three calls agree, and each parameter's gradient matches a central finite difference."""
    rng = np.random.default_rng(6)
    mixture, target = tensor(rng.standard_normal((2, 203))), tensor(rng.standard_normal((2, 2, 203)))

    class Loss(nn.Cell):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def construct(self, x):
            return ((self.net(x) - target) ** 2).mean()

    ms.set_seed(6)
    loss = Loss(DPRNN(**SMALL, kernel_size=16, init="zoo"))  # larger gradients: clear of float32 noise
    params = loss.trainable_params()
    compiled = nn.ForwardValueAndGrad(loss, weights=ms.ParameterTuple(params), get_by_list=True)
    runs = [[g.asnumpy() for g in compiled(mixture)[1]] for _ in range(3)]
    for param, first, second, third in zip(params, *runs):
        np.testing.assert_allclose(second, first, rtol=1e-5, atol=1e-7, err_msg=param.name)
        np.testing.assert_allclose(third, first, rtol=1e-5, atol=1e-7, err_msg=param.name)
    for param, grad in zip(params, runs[0]):
        direction = np.sign(grad) * (np.abs(grad) > 0.1 * np.abs(grad).max())
        original, step = param.asnumpy().copy(), 1e-3 / np.sqrt(max(direction.size, 1))
        losses = []
        for sign in (1, -1):
            param.set_data(tensor(original + sign * step * direction))
            losses.append(float(loss(mixture).asnumpy()))
        param.set_data(tensor(original))
        numeric = (losses[0] - losses[1]) / (2 * step)
        assert numeric == pytest.approx(float((grad * direction).sum()), rel=0.05, abs=1e-4), param.name


def test_prelu_equals_nn_prelu_and_its_slope_gradient_is_the_same_at_every_call(pynative):
    """The slope's gradient, summed over a large tensor, is bit-identical over 20 calls (nn.PReLU's
    is not: it sums in thread order, which made two runs of one seed, and a resumed run, drift) and
    equals the float64 sum; the output is nn.PReLU's exactly."""
    x = np.random.default_rng(11).standard_normal((4, 30, 50, 64)).astype(np.float32)
    prelu = PReLU()
    np.testing.assert_array_equal(prelu(tensor(x)).asnumpy(), nn.PReLU()(tensor(x)).asnumpy())
    grad = ms.grad(lambda v: (prelu(v) ** 2).sum(), grad_position=None, weights=prelu.trainable_params())
    slopes = {float(grad(tensor(x))[0].asnumpy()[0]) for _ in range(20)}
    negative = x[x < 0].astype(np.float64)
    assert len(slopes) == 1
    assert slopes.pop() == pytest.approx(2 * 0.25 * (negative ** 2).sum(), rel=1e-6)


def test_optimised_model_equals_the_plain_model_and_loads_its_checkpoints():
    """tests/data/plain_dprnn.* were written by the model before the CPU optimisations (commit
    29eeebc: channels-first, nn.LSTM per direction, nn.Conv1d/Conv2d/Dense, ReduceMean gLN), with
    every weight moved off its initial value: that checkpoint loads unchanged, and this model's
    output equals the one that model computed, in both modes."""
    saved = np.load(DATA / "plain_dprnn.npz")
    for mode in (ms.PYNATIVE_MODE, ms.GRAPH_MODE):
        ms.set_context(mode=mode)
        net = DPRNN(**SMALL, kernel_size=4)
        load_weights(net, DATA / "plain_dprnn.ckpt")
        net.set_train(False)
        np.testing.assert_allclose(net(tensor(saved["mixture"])).asnumpy(), saved["separated"],
                                   rtol=1e-4, atol=1e-4)
    ms.set_context(mode=ms.GRAPH_MODE)


@pytest.mark.parametrize("settings", [dict(), dict(rnn_type="GRU", norm="cgln"), dict(rnn_type="RNN", norm="ln"),
                                      dict(norm="cgln", causal=True), dict(num_spks=3, num_layers=1)])
def test_block_loop_network_equals_the_network(graph, settings):
    """Separator's compiled network on CPU (one block looped over every block's weights) computes
    the network's function, reads every block's weights, and leaves the network's parameters (the
    checkpoint's names and values) as they were."""
    ms.set_seed(6)
    net = DPRNN(**{**SMALL, **settings})
    net.set_train(False)
    # every block different, and not at its initial values
    rng = np.random.default_rng(6)
    for param in net.get_parameters():
        param.set_data(tensor(param.asnumpy() + 0.2 * rng.standard_normal(param.shape)))
    before = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    mixture = tensor(rng.standard_normal((2, 333)))
    looped = BlockLoopNetwork(net)
    looped.set_train(False)
    np.testing.assert_allclose(looped(mixture).asnumpy(), net(mixture).asnumpy(), rtol=1e-5, atol=1e-6)
    after = {p.name: p.asnumpy() for p in net.get_parameters()}
    assert list(after) == list(before)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


def test_separator_runs_the_block_loop_and_gives_the_plain_models_output():
    """A length met twice runs compiled, as BlockLoopNetwork on CPU: it still gives the output the
    model before the CPU optimisations computed (tests/data/plain_dprnn.*)."""
    saved = np.load(DATA / "plain_dprnn.npz")
    net = DPRNN(**SMALL, kernel_size=4)
    load_weights(net, DATA / "plain_dprnn.ckpt")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        assert Separator(net).compiled is net  # no graph, no loop: --mode pynative runs all eagerly
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)
    separator = Separator(net)
    assert isinstance(separator.compiled, BlockLoopNetwork)
    for mixture, separated in zip(saved["mixture"], saved["separated"]):
        for _ in range(2):  # eager, then compiled
            np.testing.assert_allclose(separator(mixture), separated, rtol=1e-4, atol=1e-4)


class _WeightedSum(nn.Cell):
    def __init__(self, rnn, weights):
        super().__init__()
        self.rnn = rnn
        self.weights = weights

    def construct(self, x):
        return (self.rnn(x)[0] * self.weights).sum()


@pytest.mark.parametrize("recompute", [True, False])
def test_fused_lstm_equals_nn_lstm_forward_and_backward(graph, recompute):
    """One kernel call for both directions (and, with recompute, the workspace rebuilt in the
    backward pass) gives nn.LSTM's outputs, input gradient and weight gradients."""
    steps, batch, inputs, hidden = 7, 5, 4, 3
    rng = np.random.default_rng(7)
    x = tensor(rng.standard_normal((steps, batch, inputs)))
    weights = tensor(rng.standard_normal((steps, batch, 2 * hidden)))
    fused = FusedLSTM(inputs, hidden, bidirectional=True)
    fused.recompute = recompute
    plain = nn.LSTM(inputs, hidden, num_layers=1, batch_first=False, bidirectional=True)
    for param, twin in zip(fused.trainable_params(), plain.trainable_params()):
        assert param.name == twin.name and param.shape == twin.shape
        twin.set_data(tensor(rng.standard_normal(param.shape)))
        param.set_data(twin.data.copy())
    results = []
    for rnn in (fused, plain):
        loss = _WeightedSum(rnn, weights)
        loss.set_train(True)
        params = ms.ParameterTuple(rnn.trainable_params())
        value_and_grad = nn.ForwardValueAndGrad(loss, weights=params, get_all=True, get_by_list=True)
        value, (input_grads, param_grads) = value_and_grad(x)
        results.append([value.asnumpy(), input_grads[0].asnumpy()] + [g.asnumpy() for g in param_grads])
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(results[0][1]).max() > 0


@pytest.mark.parametrize("steps", [1, 2, 9, 10, 250, 1001])
def test_cumsum_by_products_is_a_cumulative_sum(steps):
    v = np.random.default_rng(steps).standard_normal((3, steps)).astype(np.float32)
    np.testing.assert_allclose(cumsum_by_products(tensor(v)).asnumpy(), np.cumsum(v.astype(np.float64), axis=1),
                               rtol=1e-5, atol=1e-4)
