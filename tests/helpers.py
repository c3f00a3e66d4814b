"""What the tests share: the tiny model they train, export and separate with (seconds on two CPU
cores), and the scripts' main functions run as a user runs the scripts."""
import csv
import errno
import os
import runpy
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from device_check import TINY

ROOT = Path(__file__).resolve().parents[1]

TINY_MODEL = [arg for key, value in TINY.items() for arg in (f"--{key}", str(value))]  # the self-test's: compiles in seconds
TINY_TRAINING = TINY_MODEL + ["--segment", "1", "--batch_size", "2"]


def script_main(name):
    """The main() of an entry script (evaluate.py, ...), executed from its file as `python name`
    executes it, without importing the script as a module."""
    return runpy.run_path(str(ROOT / name), run_name=Path(name).stem)["main"]


def run_in_process(name, *argv):
    """`python name argv...` in this process: the script's main() through errors.run_main, as its
    command line runs it (a failure raises SystemExit with the one error line). Where a test is not
    about the process itself, this saves starting one (MindSpore takes about 4 s to load)."""
    from errors import run_main
    main = script_main(name)
    run_main(lambda: main([str(a) for a in argv]))


def free_port():
    """A TCP port that nothing listens on now, chosen by the kernel: each msrun a test starts gets its
    own scheduler port, so that tests running side by side (pytest-xdist) never meet on one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_310_inputs(cfg, infer_dir):
    """preprocess_310.py's work for cfg's test split: files_310.write_inputs; returns the manifest."""
    from data import mindrecord_file, read_split
    from files_310 import write_inputs
    from evaluation import fixed_length_protocol
    return write_inputs(read_split(mindrecord_file(cfg.data_dir, cfg.test_name), cfg.num_spks), infer_dir,
                        fixed_length_protocol(cfg.eval_protocol), cfg.samples("export_length"), cfg.num_spks,
                        cfg.sample_rate)


@contextmanager
def read_only(folder):
    """`folder` read-only: a read-only bind mount over it when the tests run as root (whom chmod does
    not stop), its write permission taken away otherwise."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)
        return
    subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@contextmanager
def full_disk(folder):
    """`folder` on a file system with no free byte, holding what it held (and a ballast file that
    fills it): a small tmpfs mounted over it, which needs root (CI runs as root); skipped, saying
    so, where the tests do not run as root."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is a tmpfs mounted for the test: run the tests as root (CI does)")
    with tempfile.TemporaryDirectory() as held:
        shutil.copytree(folder, held, dirs_exist_ok=True)
        size = sum(p.stat().st_size for p in Path(held).rglob("*") if p.is_file()) + (1 << 20)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
        try:
            shutil.copytree(held, folder, dirs_exist_ok=True)
            with open(folder / "ballast", "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(bytes(4096))
                except OSError as err:
                    assert err.errno == errno.ENOSPC
            yield
        finally:
            subprocess.run(["umount", "--lazy", str(folder)], check=True)


@contextmanager
def unreadable(path):
    """`path` with no permissions (root still reads it: run the reader without_root_rights)."""
    mode = path.stat().st_mode
    path.chmod(0)
    try:
        yield
    finally:
        path.chmod(mode)


def tree(*folders):
    """{path: what it is} for everything below the folders: a link's target; a file's inode, size,
    and times of last change. Any write, even of the same bytes, any replacement and any chmod
    changes the file's ctime, which no unprivileged program can set back; so this sees every change
    a content hash sees, and more, without reading the MindRecord shards (48 MB each, sparse)."""
    found = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_symlink():
                found[str(path)] = "-> " + str(path.readlink())
            elif path.is_file():
                status = path.stat()
                found[str(path)] = (status.st_ino, status.st_size, status.st_mode, status.st_mtime_ns,
                                    status.st_ctime_ns)
            else:
                found[str(path)] = "folder"
    return found


def mean_column(csv_path, column):
    """The mean of a column of a results table, read here rather than by the project's code."""
    with open(csv_path, newline="") as f:
        values = [float(row[column]) for row in csv.DictReader(f)]
    return sum(values) / len(values)


def leftovers(folder):
    """Hidden locks and temporaries (fileio.one_writer's, fileio.run_own's) anywhere below `folder`:
    a run that ended, well or badly, leaves none that are its own."""
    return [p for p in Path(folder).rglob(".*") if p.name.endswith((".lock", ".partial", ".old"))
            or ".partial." in p.name]
