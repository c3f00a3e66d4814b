"""One training step as a single graph: gradients, data-parallel mean, clipping, update."""
import mindspore as ms
from mindspore import nn, ops
from mindspore.communication import get_group_size

from network_define import DPRNNWithLoss


def _square_sum(grad):
    # The sum of one element (PReLU's slope) is taken as the element itself: CPU kernel fusion turns
    # that ReduceSum into a Reshape whose empty target shape MindSpore 2.10 hashes from uninitialised
    # memory, so the fused gradient-norm kernel got a new name in every process and each training
    # run compiled it again (about 4.5 s at start, a kernel compiler process included) instead of
    # taking it from the kernel cache. Same value, bit for bit.
    if grad.size == 1:
        return ops.square(grad.reshape(-1))[0]
    return ops.reduce_sum(ops.square(grad))


def _scale(factor, grad):
    return grad * factor


class Gradients(nn.Cell):
    """Inputs as the network-with-loss takes them -> (loss, gradients of the trainable weights)."""

    def __init__(self, network_with_loss, weights):
        super().__init__(auto_prefix=False)
        self.network = network_with_loss
        self.network.set_grad()
        self.value_and_grad = ms.value_and_grad(self.network, None, weights)

    def construct(self, *inputs):
        return self.value_and_grad(*inputs)


class ClippedUpdate(nn.Cell):
    """(loss, gradients) -> (loss, gradient global norm before clipping), weights updated.

    Gradients are averaged over data-parallel ranks when a parallel context is set, clipped to a
    global norm of `clip_norm`, and applied. A non-finite loss or gradient norm skips the update so
    one bad batch cannot poison the weights; the caller sees it in the returned values.
    """

    def __init__(self, optimizer, clip_norm):
        super().__init__(auto_prefix=False)
        self.optimizer = optimizer
        self.clip_norm = clip_norm
        self.hyper_map = ops.HyperMap()
        parallel_mode = ms.get_auto_parallel_context("parallel_mode")
        self.distributed = parallel_mode in (ms.ParallelMode.DATA_PARALLEL,
                                             ms.ParallelMode.HYBRID_PARALLEL)
        if self.distributed:
            self.grad_reducer = nn.DistributedGradReducer(optimizer.parameters, mean=True,
                                                          degree=get_group_size())

    def construct(self, loss, grads):
        if self.distributed:
            grads = self.grad_reducer(grads)
        grad_norm = ops.sqrt(ops.addn(self.hyper_map(_square_sum, grads)))
        if ops.isfinite(loss) and ops.isfinite(grad_norm):
            factor = self.clip_norm / ops.maximum(grad_norm, self.clip_norm)
            grads = self.hyper_map(ops.partial(_scale, factor), grads)
            loss = ops.depend(loss, self.optimizer(grads))
        return loss, grad_norm


class TrainOneStep(nn.Cell):
    """Inputs as the network-with-loss takes them -> (loss, gradient global norm before clipping).

    One graph: gradients, then ClippedUpdate. With micro_batches > 1 the batch is split into that
    many equal parts whose gradients are computed one graph call after another and averaged before
    the update: the same update as the whole batch (the loss is a mean over utterances, gLN is per
    utterance) with the activation memory of one part. Separate calls, because inside one graph
    MindSpore kept every part's activations alive at once.
    """

    def __init__(self, network_with_loss, optimizer, clip_norm, micro_batches=1):
        super().__init__(auto_prefix=False)
        self.network = network_with_loss
        self.optimizer = optimizer
        self.micro_batches = micro_batches
        self.gradients = Gradients(network_with_loss, optimizer.parameters)
        self.update = ClippedUpdate(optimizer, clip_norm)

    def construct(self, *inputs):
        loss, grads = self.gradients(*inputs)
        return self.update(loss, grads)

    def set_learning_rate(self, lr):
        # an Assign into the optimizer's rate: Parameter.set_data does not reach a graph compiled
        # before it (MindSpore 2.10), so every epoch would keep the first epoch's rate
        ops.assign(self.optimizer.learning_rate, ms.Tensor(lr, ms.float32))

    def __call__(self, *inputs):
        if self.micro_batches == 1:
            return super().__call__(*inputs)
        size = inputs[0].shape[0] // self.micro_batches
        total_loss, total_grads = 0.0, None
        for start in range(0, size * self.micro_batches, size):
            loss, grads = self.gradients(*[x[start:start + size] for x in inputs])
            total_loss = total_loss + loss
            total_grads = grads if total_grads is None else tuple(map(ops.add, total_grads, grads))
        scale = 1 / self.micro_batches
        return self.update(total_loss * scale, tuple(g * scale for g in total_grads))


def build_train_step(cfg, net):
    """The training step the config asks for: Adam, clipping, recompute, gradient accumulation."""
    net.set_recompute(cfg.recompute)
    optimizer = nn.Adam(net.trainable_params(), learning_rate=ms.Tensor(cfg.lr, ms.float32),
                        weight_decay=cfg.l2)
    step = TrainOneStep(DPRNNWithLoss(net, cfg.num_spks), optimizer, cfg.clip_norm,
                        cfg.grad_accumulation)
    step.set_train(True)
    return step
