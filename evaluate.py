"""Evaluation: SI-SNR of a network's estimates over whole utterances."""
from contextlib import contextmanager

import mindspore as ms

from loss import PermutationInvariantSISNR


@contextmanager
def eager_mode():
    """Run in PyNative mode inside the block.

    Whole utterances all have different lengths: graph mode would compile once per length, and its
    dynamic-shape graph keeps every intermediate (12 GB for 5 s of audio with the default model).
    """
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        yield
    finally:
        ms.set_context(mode=previous)


def mean_si_snr(net, dataset, num_spks):
    """Mean over utterances of the PIT SI-SNR (dB) of net's estimates; dataset from data.eval_dataset."""
    loss_fn = PermutationInvariantSISNR(num_spks)
    was_training = net.training
    net.set_train(False)
    total, count = 0.0, 0
    with eager_mode():
        for batch in dataset.create_dict_iterator(num_epochs=1):
            _, si_snr, _ = loss_fn(net(batch["mixture"]), batch["sources"], batch["lens"])
            total += float(si_snr.sum().asnumpy())
            count += si_snr.shape[0]
    net.set_train(was_training)
    return total / max(count, 1)
