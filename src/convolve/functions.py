"""Top-level math functions with PyTorch's names (`convolve.exp(x)`, `convolve.where(c, a, b)`, ...).

Each is a thin call of a Tensor method or of one op in `convolve.ops`, so gradients come from the same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.backend import get_default_dtype
from convolve.device import check_device
from convolve.ops import elementwise as _ew
from convolve.ops.shape import cat
from convolve.tensor import Tensor


def _tensor(x: Any, like: Tensor | None = None) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if like is not None and not isinstance(x, np.ndarray):
        return Tensor._from_array(np.asarray(x, dtype=like.dtype))
    return Tensor(x)


def is_tensor(obj: Any) -> bool:
    """True for a convolve Tensor."""
    return isinstance(obj, Tensor)


def exp(input: Tensor) -> Tensor:
    return input.exp()


def log(input: Tensor) -> Tensor:
    return input.log()


def sqrt(input: Tensor) -> Tensor:
    return input.sqrt()


def abs(input: Tensor) -> Tensor:
    return input.abs()


def clamp(input: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    return input.clamp(min, max)


def matmul(input: Tensor, other: Tensor) -> Tensor:
    return input @ other


def sum(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return input.sum(dim=dim, keepdim=keepdim)


def mean(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return input.mean(dim=dim, keepdim=keepdim)


def amax(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return input.amax(dim=dim, keepdim=keepdim)


def amin(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return input.amin(dim=dim, keepdim=keepdim)


def where(condition: Tensor, input: Any, other: Any) -> Tensor:
    """Elements of `input` where `condition` is true, else of `other` (broadcast); differentiable in both."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: `condition` must be a boolean tensor, got dtype {cond.dtype}")
    a = _tensor(input, other if isinstance(other, Tensor) else None)
    b = _tensor(other, a)
    return _ew.Where.apply(Tensor._from_array(cond), *a._pair(b))


def maximum(input: Tensor, other: Tensor) -> Tensor:
    """Element-wise maximum of two tensors (broadcast); ties split the gradient."""
    return _ew.Maximum.apply(*input._pair(other))


def minimum(input: Tensor, other: Tensor) -> Tensor:
    """Element-wise minimum of two tensors (broadcast)."""
    a, b = input._pair(other)
    return -_ew.Maximum.apply(-a, -b)


concatenate = cat
concat = cat


def eye(n: int, m: int | None = None, dtype: Any = None) -> Tensor:
    return Tensor(np.eye(n, m, dtype=get_default_dtype() if dtype is None else dtype))


def linspace(start: float, end: float, steps: int, dtype: Any = None) -> Tensor:
    return Tensor(np.linspace(start, end, steps, dtype=get_default_dtype() if dtype is None else dtype))


def empty(*size: Any, dtype: Any = None) -> Tensor:
    """Uninitialized values (as PyTorch); prefer zeros unless every element is written."""
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], tuple | list) else tuple(size)
    return Tensor(np.empty(shape, dtype=get_default_dtype() if dtype is None else dtype))


def _as(input: Any) -> Tensor:
    """A Tensor view of `input` (arrays too: `torch.max(outputs.data, 1)` hands over the raw array here)."""
    return input if isinstance(input, Tensor) else Tensor._from_array(np.asarray(input))


def argmax(input: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the largest value (over the flattened tensor when `dim` is None), int64."""
    idx = np.argmax(_as(input).data, axis=dim, keepdims=keepdim)
    return Tensor._from_array(np.asarray(idx, dtype=np.int64))


def argmin(input: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the smallest value (over the flattened tensor when `dim` is None), int64."""
    idx = np.argmin(_as(input).data, axis=dim, keepdims=keepdim)
    return Tensor._from_array(np.asarray(idx, dtype=np.int64))


def max(input: Any, dim: Any = None, keepdim: bool = False) -> Any:
    """`max(x)`: the largest value; `max(x, dim)`: (values, indices); `max(x, other)`: elementwise maximum."""
    if isinstance(dim, Tensor):
        return maximum(_as(input), dim)
    return _as(input).max(dim, keepdim)


def min(input: Any, dim: Any = None, keepdim: bool = False) -> Any:
    """`min(x)`: the smallest value; `min(x, dim)`: (values, indices); `min(x, other)`: elementwise minimum."""
    if isinstance(dim, Tensor):
        return minimum(_as(input), dim)
    return _as(input).min(dim, keepdim)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """A Tensor sharing memory with `data` when it is already an array (or Tensor) of the dtype asked for,
    else a converted copy, as `torch.as_tensor`."""
    check_device(device, "as_tensor")
    if isinstance(data, Tensor):
        return data if dtype is None or np.dtype(dtype) == data.dtype else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or np.dtype(dtype) == data.dtype):
        return Tensor._from_array(data)
    return Tensor(data, dtype=dtype)
