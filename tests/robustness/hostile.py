"""Hostile files, small on disk and huge (or deep) once expanded, written by the tests in a few milliseconds each.

Compression bombs are built without compressing gigabytes: a gzip file may hold many members (so one compressed
16 MiB block of zeros is repeated), and a deflate stream flushed with Z_FULL_FLUSH can repeat its segments.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np

BLOCK = 16 << 20  # bytes of zeros per repeated compressed block


@functools.cache
def _gzip_block() -> bytes:
    return gzip.compress(bytes(BLOCK), compresslevel=9)


@functools.cache
def _deflate_blocks(wbits: int) -> tuple[bytes, bytes, bytes]:
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    first = c.compress(bytes(BLOCK)) + c.flush(zlib.Z_FULL_FLUSH)
    segment = c.compress(bytes(BLOCK)) + c.flush(zlib.Z_FULL_FLUSH)
    return first, segment, c.flush()


def gzip_zeros(n_blocks: int) -> bytes:
    """A gzip stream of n_blocks * 16 MiB zeros (valid: one member per block)."""
    return _gzip_block() * n_blocks


def deflate_zeros(n_blocks: int, wbits: int) -> bytes:
    """A zlib (wbits=15) or raw deflate (wbits=-15) stream inflating to n_blocks * 16 MiB zeros (its checksum
    is wrong: only a reader that inflates everything ever gets to see it)."""
    first, segment, end = _deflate_blocks(wbits)
    return first + segment * (n_blocks - 1) + end


def idx_header(shape: tuple[int, ...], magic_type: int = 0x08) -> bytes:
    return bytes([0, 0, magic_type, len(shape)]) + np.asarray(shape, dtype=">i4").tobytes()


def mnist_folder(root: Path, images_gz: bytes) -> Path:
    """A test split whose image file is `images_gz` (labels small and valid)."""
    root.mkdir(parents=True)
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(images_gz)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_header((10,)) + bytes(10)))
    return root


def cifar_folder(root: Path, batch: object) -> Path:
    """An extracted CIFAR-10 folder whose test batch pickles `batch` (protocol 2, as the originals; bytes as is)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "test_batch").write_bytes(batch if isinstance(batch, bytes) else pickle.dumps(batch, protocol=2))
    return root


def shared_nested_labels(depth: int = 9, width: int = 10) -> list:
    """A list whose levels share one child: `width ** depth` ints once expanded, a few hundred bytes pickled."""
    level: list = [0] * width
    for _ in range(depth - 1):
        level = [level] * width
    return level


def deep_nested_pickle(depth: int = 100_000) -> bytes:
    """{b'labels': [[[...]]]} nested `depth` lists deep, written opcode by opcode (pickle.dumps would recurse)."""
    return b"\x80\x03}C\x06labels" + b"]" * depth + b"a" * (depth - 1) + b"s."


def tar_gz_with_big_member(path: Path, n_blocks: int) -> None:
    """A CIFAR-10 tar.gz whose first member is n_blocks * 16 MiB of zeros (3 GiB for 192), then a valid batch."""
    header = tarfile.TarInfo("cifar-10-batches-py/readme.bin")
    header.size = n_blocks * BLOCK
    rest = io.BytesIO()
    with tarfile.open(fileobj=rest, mode="w", format=tarfile.GNU_FORMAT) as tar:
        raw = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    path.write_bytes(gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT)) + gzip_zeros(n_blocks)
                     + gzip.compress(rest.getvalue()))


def _npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip archive from (name, stored bytes, method, uncompressed size) tuples (CRC left 0 when deflated)."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, method, size in members:
        offset = out.tell()
        crc = zlib.crc32(data) if method == 0 else 0
        fields = (20, 0, method, 0, 0, crc, len(data), size, len(name), 0)
        out.write(b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", *fields) + name.encode() + data)
        central.write(b"PK\x01\x02" + struct.pack("<HHHHHHIIIHHHHHII", 20, 20, 0, method, 0, 0, crc, len(data), size,
                                                  len(name), 0, 0, 0, 0, 0, offset) + name.encode())
    cd = central.getvalue()
    n = len(members)
    return out.getvalue() + cd + b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, n, n, len(cd), out.tell(), 0)


def _index(shape: list[int]) -> bytes:
    meta = {"format": "convolve-checkpoint", "version": 1, "root": {"t": "ndarray", "key": "a0"},
            "arrays": {"a0": {"dtype": "|u1", "shape": shape, "sha256": "0" * 64}}}
    raw = json.dumps(meta).encode()
    return _npy_header("|u1", (len(raw),)) + raw


def npz_member_bomb(path: Path, n_blocks: int, index_shape: list[int]) -> None:
    """A checkpoint whose member a0.npy inflates to n_blocks * 16 MiB (the index says `index_shape`)."""
    size = n_blocks * BLOCK
    header = _npy_header("|u1", (size,))
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    data = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH) + deflate_zeros(n_blocks, -15)
    index = _index(index_shape)
    path.write_bytes(_zip([("__convolve__.npy", index, 0, len(index)), ("a0.npy", data, 8, len(header) + size)]))


def npz_index_lies(path: Path) -> None:
    """A stored member of 1 MiB whose index entry says 3 bytes."""
    member = _npy_header("|u1", (1 << 20,)) + bytes(1 << 20)
    index = _index([3])
    path.write_bytes(_zip([("__convolve__.npy", index, 0, len(index)), ("a0.npy", member, 0, len(member))]))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def npy_header_only(path: Path, shape: tuple[int, ...]) -> None:
    path.write_bytes(_npy_header("|u1", shape))


def npz_deep_index(path: Path, depth: int) -> None:
    """A checkpoint whose structure index nests `depth` lists (a valid zip, a tiny file)."""
    root = '{"t": "list", "items": [' * depth + "]}" * depth
    raw = ('{"format": "convolve-checkpoint", "version": 1, "arrays": {}, "root": ' + root + "}").encode()
    index = _npy_header("|u1", (len(raw),)) + raw
    path.write_bytes(_zip([("__convolve__.npy", index, 0, len(index))]))
