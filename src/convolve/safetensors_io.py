"""Weights as safetensors files (`save_safetensors` / `load_safetensors`), the format PyTorch and Hugging Face
tools exchange: a JSON header of names, dtypes and shapes, then raw little-endian data; no pickle, so loading
never runs code. Read and written by the `safetensors` library (its NumPy API); the write is atomic."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from convolve._atomic import atomic_open
from convolve.tensor import Tensor

# safetensors' dtypes that NumPy has (bfloat16 and the float8 types have no NumPy dtype)
_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "bool")


def _library() -> Any:
    import safetensors.numpy

    return safetensors.numpy


def _array(value: Any, key: str) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.data
    if not isinstance(value, np.ndarray | np.generic):
        raise TypeError(f"save_safetensors: value of {key!r} must be a Tensor or a NumPy array, "
                        f"got {type(value).__name__}")
    array = np.asarray(value)
    if array.dtype.name not in _DTYPES:
        raise TypeError(f"save_safetensors: {key!r} has dtype {array.dtype}; safetensors stores "
                        f"{', '.join(_DTYPES)}")
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)  # (ascontiguousarray makes 0-D 1-D)


def save_safetensors(state_dict: Mapping[str, Any], path: str | os.PathLike[str],
                     metadata: Mapping[str, str] | None = None) -> Path:
    """Write `state_dict` (str -> Tensor/array, e.g. `model.state_dict()`) to `path` as safetensors.

    `metadata` is the file's free-form str -> str header (e.g. {"format": "pt"}, which Hugging Face tools read).
    Returns the path. The file replaces `path` atomically: a crash leaves the old file or the new one.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"save_safetensors: `state_dict` must be a mapping of names to tensors, "
                        f"got {type(state_dict).__name__}")
    arrays: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"save_safetensors: keys must be str, got {key!r} ({type(key).__name__})")
        arrays[key] = _array(value, key)
    if metadata is not None:
        bad = {k: v for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
        if bad or not isinstance(metadata, Mapping):
            raise TypeError(f"save_safetensors: `metadata` must map str to str, got {dict(bad) or metadata!r}")
    payload = _library().save(arrays, metadata=None if metadata is None else dict(metadata))
    with atomic_open(path, "wb") as file:
        file.write(payload)
    return Path(path)


def load_safetensors(path: str | os.PathLike[str]) -> OrderedDict[str, Tensor]:
    """Read a safetensors file into an ordered {name: Tensor} (file order), ready for `model.load_state_dict`.

    A file that is not valid safetensors raises ValueError naming the path; a dtype NumPy lacks (bfloat16)
    raises TypeError naming the tensor.
    """
    from safetensors import safe_open

    if not Path(path).is_file():
        raise FileNotFoundError(f"load_safetensors: no file at {path}")
    try:
        with safe_open(os.fspath(path), framework="numpy") as file:
            return OrderedDict((key, Tensor._from_array(file.get_tensor(key))) for key in file.keys())  # noqa: SIM118 (a safe_open handle, not a dict)
    except MemoryError:  # never disguised as a bad file
        raise
    except TypeError as error:  # safetensors raises TypeError for dtypes NumPy cannot hold
        raise TypeError(f"load_safetensors: {path}: {error}") from None
    except Exception as error:  # the library's SafetensorError (a Rust exception type) and header errors
        raise ValueError(f"load_safetensors: {path} is not a readable safetensors file: {error}") from None


def safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The free-form str -> str metadata of a safetensors file ({} when it has none)."""
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="numpy") as file:
        return dict(file.metadata() or {})
