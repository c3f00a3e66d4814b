"""SI-SNR PIT loss against an independent numpy reference, its invariances, and the numpy metrics."""
from itertools import permutations

import mindspore as ms
import numpy as np
import pytest

from loss import PermutationInvariantSISNR
from metrics import score, sdr_and_improvement, si_snr

pytestmark = pytest.mark.fast  # bash scripts/run_tests.sh --fast


def si_snr_improvement(estimates, sources, mixture):
    return score(mixture, sources, estimates, "test")["SI-SNRi"]


def reference_pit(estimates, sources, lengths):
    """Plain-loop SI-SNR PIT in float64: per utterance, best mean SI-SNR and its permutation."""
    best_snrs, best_perms = [], []
    for est, src, n in zip(estimates.astype(np.float64), sources.astype(np.float64), lengths):
        est, src = est[:, :n], src[:, :n]
        est = est - est.mean(1, keepdims=True)
        src = src - src.mean(1, keepdims=True)
        scores = {}
        for perm in permutations(range(len(src))):
            total = 0.0
            for j, i in enumerate(perm):  # estimate i goes to source j
                target = np.dot(est[i], src[j]) / np.dot(src[j], src[j]) * src[j]
                total += 10 * np.log10(np.sum(target ** 2) / np.sum((est[i] - target) ** 2))
            scores[perm] = total / len(src)
        perm = max(scores, key=scores.get)
        best_snrs.append(scores[perm])
        best_perms.append(perm)
    return np.array(best_snrs), best_perms


def run_loss(estimates, sources, lengths):
    loss_fn = PermutationInvariantSISNR(sources.shape[1])
    loss, snr, reordered = loss_fn(ms.Tensor(estimates.astype(np.float32)),
                                   ms.Tensor(sources.astype(np.float32)),
                                   ms.Tensor(np.asarray(lengths, np.int32)))
    return float(loss.asnumpy()), snr.asnumpy(), reordered.asnumpy()


def noisy_mixup(num_spks, batch=4, length=400, seed=0):
    """Estimates that are shuffled, scaled, noisy copies of the sources, and random lengths."""
    rng = np.random.default_rng(seed)
    sources = rng.standard_normal((batch, num_spks, length))
    estimates = np.stack([src[rng.permutation(num_spks)] for src in sources])
    estimates = estimates * rng.uniform(0.5, 2, (batch, num_spks, 1)) + 0.3 * rng.standard_normal(estimates.shape)
    lengths = rng.integers(length // 2, length + 1, batch)
    lengths[0] = length
    return estimates, sources, lengths


@pytest.mark.parametrize("num_spks", [2, 3])
def test_matches_numpy_reference(num_spks):
    estimates, sources, lengths = noisy_mixup(num_spks)
    loss, snr, reordered = run_loss(estimates, sources, lengths)
    ref_snr, ref_perms = reference_pit(estimates, sources, lengths)
    np.testing.assert_allclose(snr, ref_snr, rtol=1e-4, atol=1e-4)
    assert loss == pytest.approx(-ref_snr.mean(), abs=1e-4)
    for b, perm in enumerate(ref_perms):
        n = lengths[b]
        est = estimates[b, :, :n]
        expected = est[list(perm)] - est[list(perm)].mean(1, keepdims=True)
        np.testing.assert_allclose(reordered[b, :, :n], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(reordered[b, :, n:], 0)


@pytest.mark.parametrize("num_spks", [2, 3])
def test_invariant_to_order_of_estimates(num_spks):
    estimates, sources, lengths = noisy_mixup(num_spks, seed=1)
    base = run_loss(estimates, sources, lengths)
    for perm in permutations(range(num_spks)):
        loss, snr, _ = run_loss(estimates[:, list(perm)], sources, lengths)
        assert loss == pytest.approx(base[0], abs=1e-5)
        np.testing.assert_allclose(snr, base[1], atol=1e-5)


def test_scale_invariant():
    estimates, sources, lengths = noisy_mixup(2, seed=2)
    loss, snr, _ = run_loss(estimates, sources, lengths)
    scaled_loss, scaled_snr, _ = run_loss(estimates * 7.5, sources * 0.02, lengths)
    assert scaled_loss == pytest.approx(loss, abs=1e-4)
    np.testing.assert_allclose(scaled_snr, snr, atol=1e-4)


def test_perfect_estimate_scores_above_60_db():
    _, sources, lengths = noisy_mixup(2, seed=3)
    loss, snr, _ = run_loss(sources[:, ::-1] * 0.1, sources, lengths)
    assert (snr > 60).all()
    assert loss < -60


def test_padding_beyond_length_changes_nothing():
    estimates, sources, lengths = noisy_mixup(3, seed=4)
    garbage = np.random.default_rng(5).standard_normal(estimates.shape) * 100
    beyond = np.arange(estimates.shape[-1]) >= lengths[:, None, None]
    loss, snr, reordered = run_loss(estimates, sources, lengths)
    loss2, snr2, reordered2 = run_loss(np.where(beyond, garbage, estimates),
                                       np.where(beyond, -garbage, sources), lengths)
    assert loss2 == pytest.approx(loss, abs=1e-5)
    np.testing.assert_allclose(snr2, snr, atol=1e-5)
    np.testing.assert_allclose(reordered2, reordered, atol=1e-5)


def test_numpy_si_snr_agrees_with_the_loss():
    estimates, sources, _ = noisy_mixup(2, seed=6)
    full = np.full(len(sources), sources.shape[-1])
    _, snr, reordered = run_loss(estimates, sources, full)
    np.testing.assert_allclose(si_snr(reordered, sources).mean(1), snr, atol=1e-3)


def test_numpy_si_snr_known_value():
    rng = np.random.default_rng(7)
    reference = rng.standard_normal(1000)
    reference -= reference.mean()
    noise = rng.standard_normal(1000)
    noise -= noise.mean()
    noise -= np.dot(noise, reference) / np.dot(reference, reference) * reference  # orthogonal
    noise *= np.linalg.norm(reference) / np.linalg.norm(noise) / 10  # 20 dB below
    assert si_snr(3 * (reference + noise), reference) == pytest.approx(20.0, abs=1e-6)


def test_improvements_are_zero_for_the_mixture_and_large_for_the_sources():
    rng = np.random.default_rng(8)
    sources = rng.standard_normal((2, 4000))
    mixture = sources.sum(0)
    as_mixture = np.stack([mixture, mixture])
    assert si_snr_improvement(as_mixture, sources, mixture) == pytest.approx(0.0, abs=1e-9)
    sdr, sdri = sdr_and_improvement(as_mixture, sources, mixture)
    assert sdri == pytest.approx(0.0, abs=1e-6) and sdr == pytest.approx(sdr_and_improvement(
        as_mixture[::-1], sources, mixture)[0])
    noisy = sources + 0.01 * rng.standard_normal(sources.shape)
    expected = np.mean(si_snr(noisy, sources) - si_snr(mixture[None], sources))
    assert si_snr_improvement(noisy, sources, mixture) == pytest.approx(expected)
    assert expected > 30
    sdr, sdri = sdr_and_improvement(noisy, sources, mixture)
    assert sdri > 30 and sdr > sdri
