"""Dtype defaults and conversion to NumPy. The ops are written against NumPy directly: another array library
(a GPU one) would come in as an engine (`convolve/engines/`), not through a per-op array-module switch."""

from __future__ import annotations

from typing import Any

import numpy as np

_DEFAULT_DTYPE: np.dtype = np.dtype(np.float32)
_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def get_default_dtype() -> np.dtype:
    """The dtype given to tensors built from Python floats and lists (float32 unless changed)."""
    return _DEFAULT_DTYPE


def set_default_dtype(dtype: Any) -> None:
    """Set the default floating dtype (float32 or float64), as `torch.set_default_dtype`."""
    global _DEFAULT_DTYPE
    d = np.dtype(dtype)
    if d not in _FLOAT_DTYPES:
        raise TypeError(f"set_default_dtype: `dtype` must be a floating dtype (float16/32/64), got {d}")
    _DEFAULT_DTYPE = d


def is_floating(dtype: Any) -> bool:
    """True for float16/32/64."""
    return np.dtype(dtype).kind == "f"


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array for `x` (a Tensor, an array or anything array-like)."""
    data = getattr(x, "data", x)
    if type(data).__module__.startswith("cupy"):  # pragma: no cover
        return data.get()
    return np.asarray(data)
