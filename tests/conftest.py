"""Test setup: the project root importable, quiet MindSpore, single-threaded BLAS (2-core machines),
and a kernel cache of each test process's own (pytest-xdist runs the suite in two)."""
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("GLOG_v", "3")
# Kernel fusion compiles into MS_COMPILER_CACHE_PATH, which every run on the machine shares by
# default: each xdist worker (and the scripts its tests start) gets a fresh one, so that two workers
# never write one kernel's files at once and no run reuses what an earlier one compiled.
_kernels = tempfile.mkdtemp(prefix=f"dprnn_kernels_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_")
os.environ["MS_COMPILER_CACHE_PATH"] = _kernels
atexit.register(shutil.rmtree, _kernels, ignore_errors=True)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "scripts"))  # browser.py, the tests' browser driver

from device import enable_kernel_fusion  # noqa: E402  (first: it sets MindSpore's environment)
import mindspore as ms  # noqa: E402
import pytest  # noqa: E402

# The device must be chosen before any kernel runs; scripts do it in device.setup_device, which
# also turns on kernel fusion for CPU graph mode: tests compute as the scripts do, in any order.
ms.set_device("CPU", 0)
enable_kernel_fusion()


@pytest.fixture
def pynative():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=ms.GRAPH_MODE)


@pytest.fixture
def graph():
    ms.set_context(mode=ms.GRAPH_MODE)
    yield


@pytest.fixture(scope="session")
def librimix(tmp_path_factory):
    """A small demo set in LibriMix's layout: 8 train, 3 dev, 3 test mixtures of 2 talkers."""
    from demo_data import make_librimix
    return make_librimix(tmp_path_factory.mktemp("demo"), num_spks=2, counts=(8, 3, 3), seed=1,
                         speakers_per_split=(6, 3, 3))


@pytest.fixture(scope="session")
def prepared(librimix, tmp_path_factory):
    """`librimix` through preprocess.py's library: (config, data_dir)."""
    from config import load_config
    from librimix import preprocess
    out_dir = tmp_path_factory.mktemp("data")
    cfg = load_config(["--data_dir", str(out_dir), "--shard_num", "2"], verbose=False)
    preprocess(librimix, out_dir, cfg)
    return cfg, out_dir


# pytest-xdist hands each process a whole test file (--dist loadscope) in collection order, so a long
# file collected last runs alone at the end while the other core idles: the longest files go first
# (longest-first is near-optimal for two cores). Measured with --durations=0, longest first.
LONGEST_FILES = ("test_train.py", "test_demo.py", "test_streaming.py", "test_one_writer.py", "test_evaluate.py",
                 "test_model.py", "test_export_targets.py",
                 "test_train_step.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES)
    items.sort(key=rank)  # stable: every file keeps its own order


def pytest_configure(config):
    config.addinivalue_line("markers", "fast: the edit-test loop's tier, `bash scripts/run_tests.sh --fast`: the "
                                       "model, the loss, the config and the bad-input one-liners")
