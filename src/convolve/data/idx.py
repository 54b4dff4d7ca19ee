"""Reader for the IDX format of MNIST / Fashion-MNIST (big-endian header, then raw uint8 values).

Header: two zero bytes, a type code (0x08 = unsigned byte, the only one these datasets use), the
number of dimensions, then one big-endian int32 per dimension. Magic 0x00000803 = images (N, H, W),
0x00000801 = labels (N,).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

UBYTE = 0x08


def read_bytes(path: Path, fn: str) -> bytes:
    """The file's content, gunzipped when it ends in .gz; a corrupt gzip stream is a clear ValueError."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(
            f"{fn}: {path} is not a valid gzip file ({exc}); delete it and download it again (download=True)"
        ) from exc


def parse_idx(raw: bytes, ndim: int, path: Path, fn: str) -> np.ndarray:
    """The uint8 array stored in the IDX bytes `raw`, which must have `ndim` dimensions and exactly the right size."""
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    expected_magic = (UBYTE << 8) | ndim
    if magic != expected_magic:
        got = "a file shorter than 4 bytes" if magic is None else f"0x{magic:08x}"
        raise ValueError(
            f"{fn}: {path} is not an IDX file of {ndim}-D unsigned bytes: magic number must be "
            f"0x{expected_magic:08x}, got {got}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{fn}: {path} is truncated: {len(raw)} bytes, the IDX header alone needs {header}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    size = int(np.prod(shape))
    if len(raw) != header + size:
        raise ValueError(
            f"{fn}: {path} has the wrong size: header says shape {shape} ({header + size} bytes in all), "
            f"the file holds {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx(path: Path, ndim: int, fn: str) -> np.ndarray:
    """Read an IDX (optionally .gz) file holding a `ndim`-D uint8 array."""
    return parse_idx(read_bytes(path, fn), ndim, path, fn)


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
