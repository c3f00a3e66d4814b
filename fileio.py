"""Files the user sees: output locations checked before any work, held by one run at a time, and
results written whole or not at all.

Every script takes the folder it writes into for itself first (`one_writer`), so a second run into
it stops in one line instead of mixing its files with the first's. It writes through `atomic_path`
(a hidden temporary file beside the target, named after the run, flushed to disk, then renamed over
it), so a kill, a full disk or an error never leaves a torn or truncated result where the user
looks, and an earlier result stays as it was until the new one is complete.
"""
import errno
import fcntl
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

from errors import UserError, reason_of

LOCK = ".writer.lock"  # in a folder while a run writes into it; a killed run's is left unlocked


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


class OutputError(UserError):
    """An output that could not be written (a full disk, a read-only place): unlike a bad input, it
    stops the whole run, since every later output would fail the same way."""


def cannot_write(path, err):
    """The OutputError for `path` from the error writing it raised. Not every writer says why
    (libsndfile: "System error", numpy: "16000 requested and 0 written"): the disk is checked."""
    if getattr(err, "errno", None) == errno.ENOSPC or _disk_full(path):
        reason = "disk full"
    else:
        reason = getattr(err, "strerror", None) or reason_of(err)
    return OutputError(f"{path}: cannot write it ({reason}); nothing was replaced")


def _disk_full(path, below=1 << 20):
    try:
        return shutil.disk_usage(Path(path).parent).free < below
    except OSError:
        return False


@contextmanager
def atomic_path(path):
    """Yield a temporary path to write `path`'s new content to; on success it replaces `path`.

    On any error (or kill) the temporary file is removed and `path` keeps its old content. An
    OSError while writing (full disk, read-only place) becomes a one-line UserError.
    """
    with atomic_paths(path) as (tmp,):
        yield tmp


@contextmanager
def atomic_paths(*paths):
    """atomic_path for outputs that belong together (a result table, its summary and its report;
    one wav per talker): temporary paths to write, and only when every one of them is written and
    flushed to disk are they renamed over the targets. A temporary path the caller made a folder
    replaces its target folder whole (the old one is moved aside, then removed). A full disk or an
    error while writing any of them leaves every target as it was; a kill leaves hidden temporaries,
    which the next call removes."""
    paths = [Path(path) for path in paths]
    tmps = [run_own(path, f"partial{path.suffix}") for path in paths]
    olds = [run_own(path, "old") for path in paths]
    for leftover in tmps + olds:
        _remove(leftover)
    try:
        yield tmps
        for path, tmp in zip(paths, tmps):
            try:
                for written in (sorted(tmp.rglob("*")) if tmp.is_dir() else [tmp]):
                    if written.is_file():
                        _fsync(written)
            except OSError as err:
                raise cannot_write(path, err) from None
        for path, tmp, old in zip(paths, tmps, olds):
            if tmp.is_dir():
                if path.exists():
                    path.rename(old)
                tmp.rename(path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
    except OSError as err:
        raise cannot_write(paths[0], err) from None
    finally:
        for tmp in tmps:
            _remove(tmp)


def run_own(path, kind):
    """The hidden name beside `path` for this run's `kind` of temporary (partial, old, ...): the
    process id in it keeps two runs that reach the same place out of each other's files. Those of
    runs that died are removed."""
    path = Path(path)
    prefix = f".{path.name}."
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)\.{re.escape(kind)}")
    try:
        with os.scandir(path.parent) as entries:
            leftovers = [Path(e.path) for e in entries if e.name.startswith(prefix) and (m := pattern.fullmatch(e.name))
                         and not process_alive(int(m[1]))]
    except OSError:  # not made yet, or unreadable: writing there says why
        leftovers = []
    for leftover in leftovers:
        _remove(leftover)
    return path.with_name(f"{prefix}{os.getpid()}.{kind}")


def process_alive(pid):
    """Whether a process of this id runs (a dead run's temporaries may be removed if not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path):
    """atomic_paths for one folder: yields a hidden folder beside `path` to fill, which replaces
    `path` whole on success, so a reader finds the old folder or the new one, never a half-made one.
    A caller that replaces only some entries of a folder the user shares with it
    (files_310.write_inputs) or whose readers must never find the name missing
    (librimix.OutputSet, a link switched in one rename) does more than this."""
    with atomic_paths(path) as (partial,):
        partial.mkdir(parents=True)
        yield partial


def write_text(path, text):
    """Replace `path` with `text`, atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


@contextmanager
def made_folders(path):
    """Create folder `path` (and its missing parents) for the block; if the block fails, remove the
    ones it created that stayed empty, so a failed run leaves no trace."""
    path = Path(path)
    created = []
    while not path.exists():
        created.append(path)
        path = path.parent
    for folder in reversed(created):
        folder.mkdir(exist_ok=True)
    try:
        yield
    except BaseException:
        for folder in created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def check_output_dir(path, option):
    """UserError naming `option` unless `path` is, or can be made, a folder we can write in.

    Nothing is created: the nearest existing folder on the way is probed with a temporary file, so
    a run that stops on bad input afterwards leaves no trace.
    """
    path = Path(path)
    existing = path
    while not existing.exists():
        if existing.is_symlink() or existing.parent == existing:
            raise UserError(f"{option} {path}: cannot be created (dangling link {existing})")
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise UserError(f"{option} {path}: {what}; choose a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UserError(f"{option} {path}: cannot write there ({err.strerror}); choose a writable "
                        f"folder") from None
    return path


def check_output_file(path, option):
    """UserError naming `option` unless a file can be written at `path` (which must not be a folder)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name")
    check_output_dir(path.parent, option)
    return path


class FolderInUse(UserError):
    """Another run is writing into the folder (or file) this run was to write."""


def command_line():
    """How this process was started, as a user would type it again."""
    return shlex.join((["python"] if sys.argv[0].endswith(".py") else []) + sys.argv)


def lock_on(fd, lock_path, pid, command):
    """Take the lock of `lock_path` through `fd`, open on it, for the run of process `pid` started
    by `command`, and write them into it: "taken"; "busy" when another run holds it; "moved" when
    the file was removed (its run ended) or replaced since `fd` was opened, whether or not its lock
    was still held: close `fd`, open again.
    The operating system releases the lock when the last process holding `fd` ends, however it ends:
    a killed run never blocks the next one."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return "busy" if lock_path.exists() else "moved"
    try:
        on_disk = os.stat(lock_path)
    except FileNotFoundError:
        return "moved"
    held = os.fstat(fd)
    if (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino):
        return "moved"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid}\n{command}\n".encode(), 0)
    except OSError as err:  # a full disk
        lock_path.unlink()
        raise cannot_write(lock_path.parent, err) from None
    return "taken"


def holder(lock_path):
    """(pid, command) of the run holding `lock_path`, as it wrote them; (None, "") when it has not
    yet (it writes them right after taking the lock) or has just ended."""
    for _ in range(20):
        try:
            pid, _, command = lock_path.read_text().partition("\n")
        except FileNotFoundError:
            return None, ""
        except UnicodeDecodeError:
            pid, command = "", ""
        if pid.isdigit():
            return int(pid), command.strip()
        time.sleep(0.05)
    return None, ""


def way_out(option):
    """What the user of a second run into the place that `option` names can do."""
    if not option:
        return "wait for it to end"
    if option == "--output_dir":  # training's
        return "wait for it to end (then --resume auto continues it), or choose another --output_dir"
    return f"wait for it to end, or choose another {option}"


def in_use(shown, lock_path, what_to_do):
    """The FolderInUse for `shown`, whose lock another run holds; None when that run is this process
    or one it descends from: a launcher holds its folder for the processes it starts."""
    pid, command = holder(lock_path)
    if pid is not None and pid in {os.getpid(), *(p.pid for p in psutil.Process().parents())}:
        return None
    if pid is None:
        other = "it is just starting or ending"
    elif process_alive(pid):
        other = f"pid {pid}: {command}"
    else:  # a killed launcher's children keep its hold
        other = f"pid {pid}, {command}, has ended, but a process it started holds {lock_path} (fuser -v shows it)"
    return FolderInUse(f"{shown}: another run is writing into it ({other}); {what_to_do}")


@contextmanager
def one_writer(folder, option):
    """Hold `folder` (made if missing) for this run: a second run into it meanwhile stops with a
    FolderInUse naming the first and what to do (wait, or choose another `option`). Nothing is left
    of the hold afterwards, and created folders that stayed empty are removed when the block fails."""
    folder = Path(folder)
    with _held(folder, folder / LOCK, way_out(option)):
        yield


@contextmanager
def one_writer_of_file(path, option):
    """one_writer for one file (`.<name>.lock` beside it): other files in its folder stay free."""
    path = Path(path)
    with _held(path, path.with_name(f".{path.name}.lock"), way_out(option)):
        yield


@contextmanager
def _held(shown, lock_path, what_to_do):
    with made_folders(lock_path.parent):
        while True:
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise UserError(f"{shown}: cannot write there ({err.strerror}); choose a writable place") from None
            try:
                outcome = lock_on(fd, lock_path, os.getpid(), command_line())
            except UserError:
                os.close(fd)
                raise
            if outcome != "moved":
                break
            os.close(fd)
        if outcome == "busy":
            os.close(fd)
            if refusal := in_use(shown, lock_path, what_to_do):
                raise refusal
            yield
            return
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)  # before the lock goes: see lock_on's "moved"
            os.close(fd)


def hold_for_shell(fd, lock_path, pid, command, option):
    """A launcher's hold (scripts/common.sh `hold`): the lock taken through `fd`, which the shell
    opened and keeps open, so it lasts as long as the launcher and what it starts. Exit status 0
    when taken (or held by an ancestor), 75 to open again, 1 with the one line when in use."""
    lock_path = Path(lock_path)
    try:
        outcome = lock_on(fd, lock_path, pid, command)
    except UserError as err:
        sys.exit(f"error: {err}")
    if outcome == "moved":
        sys.exit(75)
    if outcome == "busy" and (refusal := in_use(lock_path.parent, lock_path, way_out(option))):
        sys.exit(f"error: {refusal}")
