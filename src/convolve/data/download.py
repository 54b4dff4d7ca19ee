"""Checksum-verified downloads: try each mirror in order, stream to a temp file, atomically move into place.

A file is only ever placed under its final name after its MD5 matched the published value, so a
truncated or tampered download is never used; an existing file whose checksum fails is fetched again.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from convolve._atomic import ensure_writable_dir

CHUNK = 1 << 20  # bytes read per network call
MAX_BYTES = 1 << 30  # default size cap of one download (the CIFAR archives are 170 MB)


class DownloadError(RuntimeError):
    """Every mirror failed (unreachable, HTTP error, short read or wrong checksum)."""


def file_md5(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file's bytes, read in chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_md5(path: str | os.PathLike[str], md5: str) -> bool:
    """True when `path` exists and its MD5 equals `md5`."""
    return os.path.isfile(path) and file_md5(path) == md5.lower()


def _fetch(url: str, dest_dir: Path, filename: str, timeout: float, deadline: float,
           max_bytes: int) -> tuple[Path, str]:
    """Stream `url` into a temp file in `dest_dir`; return (temp path, MD5). The caller owns the temp file.

    `timeout` bounds each network read, `deadline` the whole transfer (a server trickling bytes cannot stall it),
    `max_bytes` its size (a stream without Content-Length cannot fill the disk)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    h = hashlib.md5(usedforsecurity=False)
    received = 0
    stop_at = time.monotonic() + deadline
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=min(timeout, deadline)) as resp:
            expected = resp.headers.get("Content-Length")
            if expected is not None and int(expected) > max_bytes:
                raise DownloadError(f"the server announces {int(expected):,} bytes, more than the {max_bytes:,} "
                                    f"expected for {filename}")
            while block := resp.read1(CHUNK):  # returns what one network read delivered
                received += len(block)
                if received > max_bytes:
                    raise DownloadError(f"more than {max_bytes:,} bytes received, the most expected for {filename}")
                out.write(block)
                h.update(block)
                if time.monotonic() > stop_at:
                    raise DownloadError(f"not finished after {deadline:g} s ({received:,} bytes received)")
        if expected is not None and received != int(expected):
            raise DownloadError(f"short read: got {received} of {expected} bytes")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, h.hexdigest()


def download_file(
    filename: str,
    md5: str,
    root: str | os.PathLike[str],
    mirrors: Sequence[str],
    timeout: float = 60.0,
    verbose: bool = True,
    deadline: float = 3600.0,
    max_bytes: int = MAX_BYTES,
) -> Path:
    """Make `root/filename` hold the file whose MD5 is `md5`, fetching `mirror + filename` from each mirror in turn.

    An existing file with the right checksum is kept (no network access); one with a wrong checksum is
    replaced. Each attempt gives up after `timeout` seconds without data, `deadline` seconds in all, or
    `max_bytes` bytes received. `verbose` prints one line per attempt to stderr. Raises DownloadError listing what each
    mirror did when none delivered the right bytes.
    """
    if not mirrors:
        raise ValueError(f"download_file: `mirrors` must name at least one URL base, got {mirrors!r}")
    dest_dir = ensure_writable_dir(Path(root).expanduser())  # names the folder, not a temporary file
    for stale in dest_dir.glob(f".{filename}.*.part"):  # left by a download that was killed
        stale.unlink(missing_ok=True)
    dest = dest_dir / filename
    if check_md5(dest, md5):
        return dest
    failures = []
    for base in mirrors:
        url = base if base.endswith(filename) else base.rstrip("/") + "/" + filename
        if verbose:
            print(f"downloading {url} -> {dest}", file=sys.stderr, flush=True)
        try:
            tmp, got = _fetch(url, dest_dir, filename, timeout, deadline, max_bytes)
        except (urllib.error.URLError, http.client.HTTPException, OSError, DownloadError, ValueError) as exc:
            failures.append(f"  {url}: {exc}")
            continue
        if got != md5.lower():
            tmp.unlink(missing_ok=True)
            failures.append(f"  {url}: checksum mismatch (MD5 {got}, expected {md5})")
            continue
        os.replace(tmp, dest)
        return dest
    raise DownloadError(
        f"download_file: could not get {filename} with MD5 {md5} into {dest_dir}; tried:\n"
        + "\n".join(failures)
        + "\nCheck the network, or fetch the file by hand into that folder."
    )

