"""The graph-mode training step: it learns, it clips to the global norm, it skips non-finite steps."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from model import DPRNN
from network_define import DPRNNWithLoss
from train_wrapper import TrainOneStep

SMALL = dict(in_channels=16, hidden_channels=16, bn_channels=16, num_layers=2, K=20, lstm_for="CPU")


def batch(seed=0, length=800):
    rng = np.random.default_rng(seed)
    sources = rng.standard_normal((2, 2, length)).astype(np.float32)
    lengths = np.array([length, length - 100], np.int32)
    return ms.Tensor(sources.sum(1)), ms.Tensor(lengths), ms.Tensor(sources)


def weights(net):
    return [p.asnumpy().copy() for p in net.trainable_params()]


def test_adam_steps_drive_the_loss_down(graph):
    ms.set_seed(0)
    net = DPRNN(**SMALL)
    step = TrainOneStep(DPRNNWithLoss(net, 2), nn.Adam(net.trainable_params(), 1e-3, weight_decay=1e-5), 5.0)
    inputs = batch()
    losses = [float(step(*inputs)[0].asnumpy()) for _ in range(30)]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0] - 4.0, losses  # 4 dB of SI-SNR gained on this batch


def test_update_is_clipped_to_the_global_norm(graph):
    """With SGD at lr 1 the update is minus the clipped gradient: its global norm is clip_norm."""
    ms.set_seed(1)
    net = DPRNN(**SMALL)
    clip_norm = 1e-3
    step = TrainOneStep(DPRNNWithLoss(net, 2), nn.SGD(net.trainable_params(), learning_rate=1.0), clip_norm)
    before = weights(net)
    _, grad_norm = step(*batch(1))
    update = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(weights(net), before)))
    assert float(grad_norm.asnumpy()) > clip_norm
    np.testing.assert_allclose(update, clip_norm, rtol=1e-3)


def test_non_finite_batch_leaves_weights_untouched(graph):
    ms.set_seed(2)
    net = DPRNN(**SMALL)
    step = TrainOneStep(DPRNNWithLoss(net, 2), nn.Adam(net.trainable_params(), 1e-3), 5.0)
    mixture, lengths, sources = batch(2)
    poisoned = mixture.asnumpy().copy()
    poisoned[0, 10] = np.nan
    before = weights(net)
    loss, grad_norm = step(ms.Tensor(poisoned), lengths, sources)
    assert not np.isfinite(float(loss.asnumpy())) or not np.isfinite(float(grad_norm.asnumpy()))
    for a, b in zip(weights(net), before):
        np.testing.assert_array_equal(a, b)
    loss, _ = step(mixture, lengths, sources)
    assert np.isfinite(float(loss.asnumpy()))
    assert any(not np.array_equal(a, b) for a, b in zip(weights(net), before))


def test_gradient_accumulation_gives_the_full_batch_update(graph):
    """Four utterances as two micro-batches of two: the same loss, gradient norm and update as the
    four at once (the loss is a mean over utterances, and gLN is per utterance). Plain SGD without
    clipping, so the update is the gradient itself."""
    rng = np.random.default_rng(4)
    sources = rng.standard_normal((4, 2, 600)).astype(np.float32)
    inputs = (ms.Tensor(sources.sum(1)), ms.Tensor(np.array([600, 500, 550, 420], np.int32)),
              ms.Tensor(sources))
    results = []
    for micro_batches in (1, 2):
        ms.set_seed(5)
        net = DPRNN(**SMALL)
        step = TrainOneStep(DPRNNWithLoss(net, 2), nn.SGD(net.trainable_params(), learning_rate=0.1),
                            1e9, micro_batches)
        loss, grad_norm = step(*inputs)
        results.append((float(loss.asnumpy()), float(grad_norm.asnumpy()), weights(net)))
    (loss, norm, after), (accumulated_loss, accumulated_norm, accumulated_after) = results
    assert accumulated_loss == pytest.approx(loss, rel=1e-5)
    assert accumulated_norm == pytest.approx(norm, rel=1e-4)
    ms.set_seed(5)
    before = weights(DPRNN(**SMALL))
    for a, b, start in zip(accumulated_after, after, before):
        assert not np.array_equal(b, start)
        np.testing.assert_allclose(a - start, b - start, rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("micro_batches", [1, 2])
def test_a_new_learning_rate_reaches_the_compiled_step(graph, micro_batches):
    """After a compiled step, the next step's update scales with the rate set for it: Adam's update
    is the rate times moments that do not depend on it (weight decay is part of the gradient)."""
    updates = []
    for rate in (2e-3, 2e-4):
        ms.set_seed(5)
        net = DPRNN(**SMALL)
        step = TrainOneStep(DPRNNWithLoss(net, 2), nn.Adam(net.trainable_params(), ms.Tensor(2e-3, ms.float32),
                                                           weight_decay=1e-5), 5.0, micro_batches)
        step(*batch(1))
        before = weights(net)
        step.set_learning_rate(rate)
        step(*batch(2))
        updates.append(np.concatenate([(a - b).ravel() for a, b in zip(weights(net), before)]))
    np.testing.assert_allclose(updates[1], updates[0] * 0.1, rtol=1e-3, atol=2e-7)  # weights ~1: float32 steps
