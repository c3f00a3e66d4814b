"""The device MindSpore runs on: its environment, the device target and execution mode, and CPU kernel fusion.

Imported before anything else that loads MindSpore (config.py does so first), because MindSpore
reads some of these environment variables when it loads.
"""
import atexit
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

# MindSpore logs a warning for every backend it probes; keep them unless the user asked for them.
os.environ.setdefault("GLOG_v", "3")
# one BLAS thread per process, set before numpy loads: evaluate.py's SDR worker processes and
# MindSpore's own threads share the cores, and OpenBLAS's threads only fight them (2 cores, two
# workers: mir_eval's SDR of a 4-s 2-talker utterance 0.36 s per call threaded, 0.21 s with one
# thread; 0.24 against 0.21 s for one process alone; 2026-12-04)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# graph-kernel fusion compiles its kernels into this cache rather than the working folder
os.environ.setdefault("MS_COMPILER_CACHE_PATH", str(Path(tempfile.gettempdir()) / "dprnn_mindspore_kernels"))

import mindspore as ms  # noqa: E402  (after GLOG_v)

# the fusion compiler reads its tiling tables from MindSpore's package, outside its default white list
os.environ.setdefault("AKG_WHITE_LIST_PATH", os.path.dirname(ms.__file__))

from errors import UserError  # noqa: E402

DEVICES = ("Ascend", "GPU", "CPU")


def available_devices():
    """Device targets this machine's MindSpore can use, preferred first."""
    return [d for d in DEVICES if d == "CPU" or ms.hal.is_available(d)]


def enable_kernel_fusion():
    """Fuse chains of element-wise ops and reductions into compiled kernels (graph mode).

    On CPU this makes a training step of the default model faster and smaller (`bench.py train
    --kernel_fusion true|false`; docs/performance.md): the normalisations, gates, loss and Adam
    become a few fused kernels instead of dozens of memory passes. The fusion compiler leaves a log
    in the working folder, removed at exit unless it was there before.
    """
    # Two ops stay out of fusion in MindSpore 2.10: fused Tanh is a fast approximation (visible
    # errors in the separated output), and a fused Square in the training step's gradient norm gave
    # wrong norms, so wrong clipping (tests/test_train_step.py catches it).
    ms.set_context(enable_graph_kernel=True,
                   graph_kernel_flags="--disable_expand_ops=Tanh,Square --disable_cluster_ops=Tanh,Square")
    log = Path("dsa_transfrom.log").resolve()
    if not log.exists():
        atexit.register(log.unlink, missing_ok=True)


def setup_device(device_target, device_id=0, mode="graph", kernel_fusion=True, distributed=False):
    """Set MindSpore's device and execution mode (the config's device group); returns the device
    target used."""
    available = available_devices()
    target = available[0] if device_target == "auto" else device_target
    if target not in available:
        raise UserError(f"device_target {target} was asked for, but this machine's MindSpore "
                        f"can use only {', '.join(available)}: pass --device_target auto or CPU")
    mode = ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE
    # GRU and RNN cells unroll into nested calls that exceed graph mode's default depth of 1000.
    ms.set_context(mode=mode, max_call_depth=10000)
    if kernel_fusion and target == "CPU" and mode == ms.GRAPH_MODE:
        enable_kernel_fusion()
    # in data-parallel runs msrun and the rank-table launcher give each process its device
    if distributed:
        device_id = int(os.environ.get("DEVICE_ID", device_id))
    ms.set_device(target, device_id)
    return target


@contextmanager
def eager_mode():
    """Run in PyNative mode inside the block.

    Whole utterances all have different lengths: graph mode would compile once per length, and its
    dynamic-shape graph keeps every intermediate (gigabytes for seconds of audio with the default
    model).
    """
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        yield
    finally:
        ms.set_context(mode=previous)
