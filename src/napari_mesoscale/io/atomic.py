"""Atomic writes: write beside the target, then rename over it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    Parameters
    ----------
    path : path-like
        Final location of the file or folder.
    directory : bool
        Create the temporary location as an empty folder (for folder formats such as Zarr
        stores and result bundles) instead of leaving it for a file.

    Notes
    -----
    A reader never sees a half-written result: on error the temporary file is removed and
    an existing ``path`` is left untouched. An existing folder is exchanged with the new one in
    one atomic ``renameat2(RENAME_EXCHANGE)`` (Linux); elsewhere with two renames, where a
    crash between them leaves ``path`` absent and both the old (``.<name>.old.*``) and the new
    (``.<name>.*``) folder complete beside it. The old folder is removed only after the new
    one is in place. A process killed before the swap leaves its ``.<name>.*`` temporary
    behind; :func:`remove_stale_temporaries` clears them for single-writer files.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid in the name tells a dead writer's leftovers from a live one's
    prefix = f".{target.name}.{os.getpid()}."
    if directory:
        temporary = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(handle)
        temporary = Path(name)
    # mkstemp / mkdtemp create 0600 / 0700: give the result the mode an ordinary write gives
    # (umask applied), else colleagues (or napari run as another user) cannot read it
    os.chmod(temporary, (0o777 if directory else 0o666) & ~_umask())
    try:
        yield temporary
        if directory:
            _replace_directory(temporary, target)
        else:
            os.replace(temporary, target)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()
        raise


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete ``.<name>.*`` temporaries left beside ``path`` by killed writers; return them.

    A temporary named after a process that is still running (other than this one) is kept;
    others (dead writers, names without a pid) are removed. Meant for paths with a single
    writer (e.g. a training checkpoint).
    """
    target = Path(path)
    prefix = f".{target.name}."
    stale = [
        entry
        for entry in sorted(target.parent.glob(f"{prefix}*"))
        if not _written_by_other_live_process(entry.name[len(prefix) :])
    ]
    for entry in stale:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return stale


def _written_by_other_live_process(suffix: str) -> bool:
    """Whether a temporary's name suffix ``<pid>.<random>`` names another running process."""
    token = suffix.split(".", 1)[0]
    if not token.isdigit() or int(token) == os.getpid() or os.name != "posix":
        return False
    try:
        os.kill(int(token), 0)  # signal 0: existence check only (POSIX)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _exchange(source: Path, target: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2``); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(
        at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(target), rename_exchange
    )
    return result == 0


def _replace_directory(source: Path, target: Path) -> None:
    if not target.exists():
        os.replace(source, target)
        return
    if target.is_dir() and not target.is_symlink() and _exchange(source, target):
        shutil.rmtree(source, ignore_errors=True)  # ``source`` now holds the old folder
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    retired.rmdir()
    os.replace(target, retired)
    try:
        os.replace(source, target)
    except BaseException:
        os.replace(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)
