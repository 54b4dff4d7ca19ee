"""Reader for the IDX format of MNIST / Fashion-MNIST (big-endian header, then raw uint8 values).

Header: two zero bytes, a type code (0x08 = unsigned byte, the only one these datasets use), the
number of dimensions, then one big-endian int32 per dimension. Magic 0x00000803 = images (N, H, W),
0x00000801 = labels (N,).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

UBYTE = 0x08


MAX_ITEMS = 1_000_000  # first dimension; the published MNIST / Fashion-MNIST files hold 60,000 and 10,000
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def _open(path: Path) -> Any:
    """The file's byte stream, decompressed on the fly when it ends in .gz (nothing is read yet)."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    """Up to `n` bytes (fewer only at the end of the stream), read in bounded chunks."""
    parts, left = [], n
    while left > 0:
        block = stream.read(min(left, 1 << 22))
        if not block:
            break
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


def _header(stream: BinaryIO, ndim: int, path: Path, fn: str) -> tuple[int, ...]:
    """Check the magic number and return the declared shape (reads only the 4 + 4 * ndim header bytes)."""
    magic_bytes = _read_exactly(stream, 4)
    magic = int.from_bytes(magic_bytes, "big") if len(magic_bytes) == 4 else None
    expected_magic = (UBYTE << 8) | ndim
    if magic != expected_magic:
        got = "a file shorter than 4 bytes" if magic is None else f"0x{magic:08x}"
        raise ValueError(
            f"{fn}: {path} is not an IDX file of {ndim}-D unsigned bytes: magic number must be "
            f"0x{expected_magic:08x}, got {got}"
        )
    dims = _read_exactly(stream, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{fn}: {path} is truncated: the IDX header needs {4 + 4 * ndim} bytes")
    return tuple(int(d) for d in np.frombuffer(dims, dtype=">i4"))


def read_idx(path: Path, ndim: int, fn: str, item_shape: tuple[int, ...] | None = None,
             max_items: int = MAX_ITEMS) -> np.ndarray:
    """Read an IDX (optionally .gz) file holding a `ndim`-D uint8 array, at a cost bounded by its header.

    The header is checked first (magic number, `item_shape` of each item if given, at most `max_items` items);
    then exactly the declared number of bytes is decompressed and a file holding more or fewer is refused, so a
    small file that inflates to gigabytes is stopped after the size its header declares.
    """
    try:
        with _open(path) as stream:
            shape = _header(stream, ndim, path, fn)
            if item_shape is not None and shape[1:] != tuple(item_shape):
                noun, dims = ("images" if ndim == 3 else "items"), "x".join(map(str, item_shape))
                raise ValueError(f"{fn}: {noun} must be {dims}, got shape {shape} in {path}")
            if not 0 <= shape[0] <= max_items or min(shape) < 0:
                raise ValueError(f"{fn}: {path} declares shape {shape}: at most {max_items:,} items are accepted")
            size = int(np.prod(shape, dtype=np.int64))
            body = _read_exactly(stream, size)
            extra = len(stream.read(1))
    except _GZIP_ERRORS as exc:
        raise ValueError(
            f"{fn}: {path} is not a valid gzip file ({exc}); delete it and download it again (download=True)"
        ) from exc
    if len(body) != size or extra:
        held = f"{len(body)} bytes of data" if len(body) != size else "more data than that"
        raise ValueError(f"{fn}: {path} has the wrong size: header says shape {shape} ({size} bytes of data), "
                         f"the file holds {held}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape).copy()


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (gzip-compressed when `path` ends in .gz): for tests and small fixtures."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    payload = header + array.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
