"""Argument checks shared by the ops and layers; each error names the argument, the expected and received value."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from convolve.tensor import Tensor


def check_tensor(x: Any, name: str, fn: str) -> Tensor:
    """`x` must be a Tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: `{name}` must be a convolve Tensor, got {type(x).__name__}")
    return x


def check_float(x: Any, name: str, fn: str) -> Tensor:
    """`x` must be a floating-point Tensor (float16/32/64)."""
    check_tensor(x, name, fn)
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: `{name}` must be a floating-point tensor, got dtype {x.dtype}")
    return x


def check_ndim(x: Tensor, ndims: Iterable[int], name: str, fn: str, layout: str = "") -> None:
    """`x.ndim` must be one of `ndims`; `layout` (e.g. '(N, C, H, W)') is quoted in the message."""
    allowed = tuple(ndims)
    if x.ndim not in allowed:
        want = " or ".join(f"{n}-D" for n in allowed)
        hint = f" {layout}" if layout else ""
        raise ValueError(f"{fn}: `{name}` must be {want}{hint}, got {x.ndim}-D with shape {tuple(x.shape)}")


def check_not_empty(x: Tensor, name: str, fn: str) -> None:
    """No dimension of `x` may be zero (an empty batch or an empty spatial size)."""
    if x.data.size == 0:
        raise ValueError(f"{fn}: `{name}` must not be empty, got shape {tuple(x.shape)}")


def ntuple(value: Any, n: int, name: str, fn: str) -> tuple[int, ...]:
    """An int, or a sequence of `n` ints, as a tuple of `n` ints."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return (int(value),) * n
    if isinstance(value, tuple | list) and len(value) == n and all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value):
        return tuple(int(v) for v in value)
    raise ValueError(f"{fn}: `{name}` must be an int or a tuple of {n} ints, got {value!r}")


def check_positive(values: tuple[int, ...], name: str, fn: str) -> None:
    """Every value must be >= 1 (strides, dilations, kernel sizes)."""
    if any(v < 1 for v in values):
        raise ValueError(f"{fn}: `{name}` must be positive, got {values if len(values) > 1 else values[0]}")


def check_non_negative(values: tuple[int, ...], name: str, fn: str) -> None:
    """Every value must be >= 0 (paddings)."""
    if any(v < 0 for v in values):
        raise ValueError(f"{fn}: `{name}` must be non-negative, got {values if len(values) > 1 else values[0]}")


def check_probability(p: float, name: str, fn: str) -> None:
    """0 <= p <= 1."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{fn}: `{name}` must be in [0, 1], got {p}")
