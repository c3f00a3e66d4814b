"""One training step as a single graph: gradients, data-parallel mean, clipping, update."""
import mindspore as ms
from mindspore import nn, ops
from mindspore.communication import get_group_size


def _square_sum(grad):
    return ops.reduce_sum(ops.square(grad))


def _scale(factor, grad):
    return grad * factor


class TrainOneStep(nn.Cell):
    """Inputs as the network-with-loss takes them -> (loss, gradient global norm before clipping).

    Gradients are averaged over data-parallel ranks when a parallel context is set, clipped to a
    global norm of `clip_norm`, and applied. A non-finite loss or gradient norm skips the update so
    one bad batch cannot poison the weights; the caller sees it in the returned values.
    """

    def __init__(self, network_with_loss, optimizer, clip_norm):
        super().__init__(auto_prefix=False)
        self.network = network_with_loss
        self.network.set_grad()
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True)
        self.clip_norm = clip_norm
        self.hyper_map = ops.HyperMap()
        parallel_mode = ms.get_auto_parallel_context("parallel_mode")
        self.distributed = parallel_mode in (ms.ParallelMode.DATA_PARALLEL,
                                             ms.ParallelMode.HYBRID_PARALLEL)
        if self.distributed:
            self.grad_reducer = nn.DistributedGradReducer(self.weights, mean=True,
                                                          degree=get_group_size())

    def construct(self, *inputs):
        loss = self.network(*inputs)
        grads = self.grad(self.network, self.weights)(*inputs)
        if self.distributed:
            grads = self.grad_reducer(grads)
        grad_norm = ops.sqrt(ops.addn(self.hyper_map(_square_sum, grads)))
        if ops.isfinite(loss) and ops.isfinite(grad_norm):
            factor = self.clip_norm / ops.maximum(grad_norm, self.clip_norm)
            grads = self.hyper_map(ops.partial(_scale, factor), grads)
            loss = ops.depend(loss, self.optimizer(grads))
        return loss, grad_norm
