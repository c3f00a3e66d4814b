"""Files the user sees: output locations checked before any work, results written whole or not at all.

Every script writes through `atomic_path` (a hidden temporary file beside the target, flushed to
disk, then renamed over it), so a kill, a full disk or an error never leaves a torn or truncated
result where the user looks, and an earlier result stays as it was until the new one is complete.
"""
import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from errors import UserError, reason_of


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
    tmps = [path.with_name(f".{path.name}.partial{path.suffix}") for path in paths]
    olds = [path.with_name(f".{path.name}.old") for path in paths]
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
