"""Tensor factories with PyTorch's names: zeros, ones, full, arange, rand, randn, from_numpy, ..."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.backend import get_default_dtype
from convolve.random import Generator, rng
from convolve.tensor import Tensor, _numeric


def _shape(size: tuple[Any, ...]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], tuple | list):
        return tuple(size[0])
    return tuple(size)


def _dtype(dtype: Any) -> np.dtype:
    return get_default_dtype() if dtype is None else np.dtype(dtype)


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(size), _dtype(dtype)), requires_grad=requires_grad)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(size), _dtype(dtype)), requires_grad=requires_grad)


def _scalar_dtype(dtype: Any, *values: Any) -> np.dtype:
    """PyTorch's inference: an explicit dtype wins; any float value gives the default float, ints give int64."""
    if dtype is not None:
        return np.dtype(dtype)
    if any(isinstance(v, float | np.floating) for v in values):
        return get_default_dtype()
    return np.dtype(np.int64)


def full(size: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.full(tuple(size), fill_value, _scalar_dtype(dtype, fill_value)), requires_grad=requires_grad)


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros_like(t.data), requires_grad=requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones_like(t.data), requires_grad=requires_grad)


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None) -> Tensor:
    values = np.arange(start, end, step) if end is not None else np.arange(start)
    return Tensor(values, dtype=_scalar_dtype(dtype, start, end, step))


def rand(*size: Any, dtype: Any = None, generator: Generator | None = None, requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1)."""
    data = rng(generator).random(_shape(size)).astype(_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def randn(*size: Any, dtype: Any = None, generator: Generator | None = None, requires_grad: bool = False) -> Tensor:
    """Standard normal."""
    data = rng(generator).standard_normal(_shape(size)).astype(_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def randint(low: int, high: int, size: Any, generator: Generator | None = None) -> Tensor:
    return Tensor(rng(generator).integers(low, high, size=tuple(size), dtype=np.int64))


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with `array` (dtype kept; object and string arrays refused, as PyTorch)."""
    return Tensor._from_array(_numeric(np.asarray(array)))
