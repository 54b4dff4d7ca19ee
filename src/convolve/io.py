"""Checkpoints: `save(obj, path)` / `load(path)` for nested dicts, lists and tuples of Tensors, arrays and plain values.

The file is one `.npz` archive (readable by NumPy alone): every Tensor/array is a member `a<i>.npy`, and the nested
structure is JSON in the member `__convolve__.npy` (a uint8 array), with a format version and, for every array, its
dtype, shape and SHA-256. `load` reads with `allow_pickle=False`, so no file can execute code; a truncated, corrupted,
foreign or tampered file raises ValueError naming the path and the problem, never returning half an object.
Writes are atomic (a temporary file in the same directory, fsync, then `os.replace`): a kill leaves the old file.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np

from convolve._atomic import atomic_open
from convolve.tensor import Tensor

FORMAT = "convolve-checkpoint"
VERSION = 1
_META = "__convolve__"
MAX_INFLATION = 100  # a compressed member may inflate at most this many times
MAX_INDEX_BYTES = 64 << 20  # the JSON structure index (a few KB for a model; histories are small)
MAX_NPY_HEADER = 10_000  # NumPy's own default limit for .npy headers
MAX_DEPTH = 100  # nesting of the saved object (a training checkpoint uses about 6)
_DTYPE_KINDS = "biufc"  # bool, int, uint, float, complex: never object/void/string arrays (pickle or ambiguity)


class _Encoder:
    """Turn the object tree into JSON-ready nodes, collecting the arrays it references."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _array(self, arr: np.ndarray, where: str) -> str:
        if arr.dtype.kind not in _DTYPE_KINDS:
            raise TypeError(f"save: {where} is an array of dtype {arr.dtype}; only numeric/bool arrays can be stored")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = arr
        return key

    def encode(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, bool | str):
            return obj
        if isinstance(obj, Tensor):
            return {"t": "tensor", "key": self._array(obj.data, where), "requires_grad": bool(obj.requires_grad)}
        if isinstance(obj, np.ndarray):
            return {"t": "ndarray", "key": self._array(obj, where)}
        if isinstance(obj, np.generic):
            return {"t": "npscalar", "key": self._array(np.asarray(obj), where)}
        if isinstance(obj, int | float):
            return obj
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if isinstance(k, bool) or not isinstance(k, str | int):
                    raise TypeError(
                        f"save: {where} has a key {k!r} of type {type(k).__name__}; keys must be str or int"
                    )
                items.append([k, self.encode(v, f"{where}[{k!r}]")])
            return {"t": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
        if isinstance(obj, list | tuple):
            kind = "tuple" if isinstance(obj, tuple) else "list"
            return {"t": kind, "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        raise TypeError(
            f"save: {where} has type {type(obj).__name__}; only dict/list/tuple of Tensor, ndarray, "
            "int, float, bool, str and None can be stored"
        )


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write `obj` (e.g. {'model': model.state_dict(), 'optimizer': opt.state_dict(), 'epoch': 3}) to `path`."""
    path = os.fspath(path)
    enc = _Encoder()
    root = enc.encode(obj, "obj")
    manifest = {k: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": _digest(a)} for k, a in enc.arrays.items()}
    meta = {"format": FORMAT, "version": VERSION, "root": root, "arrays": manifest}
    meta_bytes = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    members: dict[str, Any] = {_META: meta_bytes, **enc.arrays}
    with atomic_open(path, "wb") as f:
        np.savez(f, **members)


def load(path: str | os.PathLike[str]) -> Any:
    """Read a file written by `save`; Tensors come back as Tensors (same dtype, requires_grad), arrays as arrays."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"load: {path!r} is a folder, not a checkpoint file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no such file: {path!r}")
    try:
        _check_magic(path)
        _check_compression(path)
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise _InvalidError("it is a single .npy array, not a .npz archive")
        with archive:
            meta = _read_meta(archive)
            arrays = _read_arrays(archive, meta["arrays"])
    except _InvalidError as e:
        raise ValueError(f"load: {path!r} is not a valid convolve checkpoint: {e}") from None
    except Exception as e:  # any parser failure on an untrusted file (BadZipFile, zlib.error, EOFError, ...)
        raise ValueError(f"load: {path!r} is not a valid convolve checkpoint: {type(e).__name__}: {e}") from e
    try:
        return _decode(meta["root"], arrays, "obj")
    except _InvalidError as e:
        raise ValueError(f"load: {path!r} has a corrupt structure index: {e}") from None


class _InvalidError(Exception):
    """Internal: a specific reason the file is not a valid checkpoint."""


def _check_magic(path: str) -> None:
    """A checkpoint is a zip archive (.npz): say what else the file is instead of letting a parser guess."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return
    if head.startswith(b"\x93NUMPY"):
        raise _InvalidError("it is a single .npy array, not a .npz archive")
    if not head:
        raise _InvalidError("the file is empty")
    what = "a Python pickle (never unpickled: it could run code)" if head[:1] == b"\x80" else f"starts with {head!r}"
    raise _InvalidError(f"it is not a .npz (zip) archive: {what}")


def _check_compression(path: str) -> None:
    """Refuse members that inflate more than MAX_INFLATION times (zip bombs), from the zip directory alone.

    `save` stores members uncompressed, so their sizes are bytes really on disk; zipfile never inflates a member
    past its declared size, and `_check_member` ties each declared size to the shape in the index."""
    if not zipfile.is_zipfile(path):
        return  # np.load reports what it is
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_INFLATION * max(info.compress_size, 1):
                raise _InvalidError(f"member {info.filename!r} declares {info.file_size:,} bytes from "
                                    f"{info.compress_size:,} compressed (more than {MAX_INFLATION}x: a zip bomb?)")


def _check_member(archive: Any, key: str, info: dict[str, Any]) -> None:
    """Read only the .npy header of member `key`: its dtype and shape must be the index's, and the member's
    declared size exactly header + data, before a byte of data is read."""
    with archive.zip.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f, max_header_size=MAX_NPY_HEADER)
        header_size = f.tell()
    if dtype.kind not in _DTYPE_KINDS:
        raise _InvalidError(f"array {key!r} cannot be read without pickle (object arrays are refused): dtype {dtype}")
    if dtype.str != info.get("dtype") or list(shape) != info.get("shape"):
        raise _InvalidError(f"array {key!r} is {dtype.str} {list(shape)}, the index says {info.get('dtype')} "
                            f"{info.get('shape')}")
    expected = header_size + dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    size = archive.zip.getinfo(f"{key}.npy").file_size
    if size != expected:
        raise _InvalidError(f"array {key!r} member holds {size:,} bytes, its header and shape {list(shape)} say "
                            f"{expected:,}")


def _read_meta(archive: Any) -> dict[str, Any]:
    if _META not in archive.files:
        raise _InvalidError(
            f"the archive has no '{_META}' index (not written by convolve.io.save); members {archive.files}"
        )
    size = archive.zip.getinfo(f"{_META}.npy").file_size
    if size > MAX_INDEX_BYTES:
        raise _InvalidError(f"the '{_META}' index declares {size:,} bytes (at most {MAX_INDEX_BYTES:,} accepted)")
    raw = archive[_META]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _InvalidError(f"the '{_META}' index has dtype {raw.dtype} and shape {raw.shape}, expected 1-D uint8")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _InvalidError(f"the '{_META}' index is not valid JSON ({e})") from None
    except RecursionError:
        raise _InvalidError(f"the '{_META}' index is nested too deeply to be a checkpoint") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _InvalidError(f"the index does not declare format {FORMAT!r}")
    version = meta.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise _InvalidError(f"format version {version!r} is not supported (this convolve reads versions 1..{VERSION})")
    if not isinstance(meta.get("arrays"), dict) or "root" not in meta:
        raise _InvalidError("the index lacks its 'root' or 'arrays' entry")
    return meta


def _read_arrays(archive: Any, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    members = set(archive.files) - {_META}
    if members - set(manifest):
        raise _InvalidError(f"the archive holds arrays the index does not list: {sorted(members - set(manifest))}")
    arrays = {}
    for key, info in manifest.items():
        if key not in members:
            raise _InvalidError(f"array {key!r} listed in the index is missing from the archive")
        _check_member(archive, key, info)
        try:
            arr = archive[key]
        except ValueError as e:
            raise _InvalidError(
                f"array {key!r} cannot be read without pickle (object arrays are refused): {e}"
            ) from None
        if arr.dtype.kind not in _DTYPE_KINDS:
            raise _InvalidError(f"array {key!r} has dtype {arr.dtype}; only numeric/bool arrays are accepted")
        if arr.dtype.str != info.get("dtype") or list(arr.shape) != info.get("shape"):
            raise _InvalidError(
                f"array {key!r} is {arr.dtype.str} {list(arr.shape)}, the index says {info.get('dtype')} "
                f"{info.get('shape')}"
            )
        if _digest(arr) != info.get("sha256"):
            raise _InvalidError(f"array {key!r} does not match its SHA-256 checksum (modified or corrupted)")
        arrays[key] = arr
    return arrays


def _decode(node: Any, arrays: dict[str, np.ndarray], where: str, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise _InvalidError(f"{where[:60]}...: nested too deeply (more than {MAX_DEPTH} levels)")
    if node is None or isinstance(node, bool | int | float | str):
        return node
    if not isinstance(node, dict) or "t" not in node:
        raise _InvalidError(f"{where}: unexpected node {str(node)[:80]!r}")
    kind = node["t"]
    if kind in ("tensor", "ndarray", "npscalar"):
        if node.get("key") not in arrays:
            raise _InvalidError(f"{where}: refers to array {node.get('key')!r} which the index does not list")
        arr = arrays[node["key"]]
        if kind == "tensor":
            return Tensor(arr, requires_grad=bool(node.get("requires_grad", False)))
        return arr if kind == "ndarray" else arr[()]
    items = node.get("items")
    if not isinstance(items, list):
        raise _InvalidError(f"{where}: a {kind!r} node without an 'items' list")
    if kind in ("list", "tuple"):
        values = [_decode(v, arrays, f"{where}[{i}]", depth + 1) for i, v in enumerate(items)]
        return tuple(values) if kind == "tuple" else values
    if kind in ("dict", "odict"):
        out: dict[Any, Any] = OrderedDict() if kind == "odict" else {}
        for pair in items:
            if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str | int):
                raise _InvalidError(f"{where}: a malformed dict entry {str(pair)[:80]!r}")
            out[pair[0]] = _decode(pair[1], arrays, f"{where}[{pair[0]!r}]", depth + 1)
        return out
    raise _InvalidError(f"{where}: unknown node type {kind!r}")
