"""Crash-safe file writes: a temporary file in the same folder, fsync, `os.replace`, fsync of the folder.

A reader (or a process restarted after a kill) sees either the old file or the new one, never half of one. The
only trace a kill can leave is a `.tmp-*` file next to the target, which `remove_stale_temps` deletes.
`fault_hook`, when set (by the fault-injection tests), is called at every write point with a label, so a test can
make the process kill itself at write point k and check that nothing is lost.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"
fault_hook: Callable[[str], None] | None = None


@functools.cache
def _default_mode() -> int:
    """The permission bits `open()` would give a new file (0o666 minus the umask); mkstemp's are 0o600."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_point(label: str) -> None:
    """Mark a point where a kill must leave a consistent state (calls `fault_hook` when set)."""
    if fault_hook is not None:
        fault_hook(label)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file to write `path`'s new content; on success it replaces `path` atomically.

    An exception inside the block (or a failed write) removes the temporary file and leaves `path` untouched;
    OSErrors are re-raised naming `path`, not the temporary file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: `mode` must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{name}-", dir=directory)
    except OSError as e:
        raise type(e)(e.errno, f"cannot write {path}: {e.strerror}") from None
    try:
        opened: IO[Any] = os.fdopen(fd, "w", encoding="utf-8", newline="") if mode == "w" else os.fdopen(fd, "wb")
        with opened as f:
            if hasattr(os, "fchmod"):  # keep the target's permissions (a new file gets the umask's)
                os.fchmod(f.fileno(), os.stat(path).st_mode & 0o7777 if os.path.exists(path) else _default_mode())
            yield f
            f.flush()
            os.fsync(f.fileno())
        write_point(f"{name}: written to a temporary file")
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):  # name the user's file, not the temporary one
            raise type(e)(e.errno, f"cannot write {path}: {e.strerror or e}") from None
        raise
    write_point(f"{name}: renamed into place")
    fsync_dir(directory)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically replace `path`'s content with `data`."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically replace `path`'s content with `text` (UTF-8)."""
    with atomic_open(path, "w") as f:
        f.write(text)


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Atomically make `dst` a byte-for-byte copy of `src`."""
    with open(src, "rb") as fin, atomic_open(dst, "wb") as fout:
        while block := fin.read(1 << 20):
            fout.write(block)


def remove_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the `.tmp-*` files a killed write left in `directory`; returns what was removed."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.glob(f"{TMP_PREFIX}*"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def ensure_writable_dir(directory: str | os.PathLike[str]) -> Path:
    """Create `directory` if needed and check a file can be written in it (before hours of training, not after)."""
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise type(e)(e.errno, f"cannot write into the output folder {folder}: {e.strerror or e}") from None
    return folder
