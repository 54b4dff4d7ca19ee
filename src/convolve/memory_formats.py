"""Memory formats, as in PyTorch: how the values of a 4-D (N, C, H, W) tensor lie in memory.

The shape and the indexing of a tensor never change with its memory format; only its strides do. A
`channels_last` tensor keeps the C values of each pixel together, i.e. an (N, H, W, C) array seen through
`transpose(0, 3, 1, 2)`. The convolution kernels compute channels-last inside, so activations that stay
channels-last from layer to layer save each layer a transpose of its input and of its output (forward and
backward). As in PyTorch: `x.to(memory_format=convolve.channels_last)`, `model.to(memory_format=...)` (the 4-D
weights), and a convolution's output is channels-last when its input or its weight is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["channels_last", "contiguous_format", "empty", "is_channels_last", "memory_format", "preserve_format",
           "to_format"]


class memory_format:  # noqa: N801 - PyTorch's name (torch.memory_format)
    """A memory format: `convolve.contiguous_format`, `convolve.channels_last` or `convolve.preserve_format`."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"convolve.{self._name}"

    def __reduce__(self) -> str:
        return self._name  # pickles as the module-level instance


contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
preserve_format = memory_format("preserve_format")

FORMATS = (contiguous_format, channels_last, preserve_format)


def check(value: Any, fn: str, allowed: tuple[memory_format, ...] = FORMATS) -> memory_format:
    """`value` when it is one of `allowed`, else a TypeError naming the argument, the allowed and the received."""
    if not any(value is f for f in allowed):
        names = ", ".join(repr(f) for f in allowed)
        raise TypeError(f"{fn}: `memory_format` must be one of {names}, got {value!r}")
    return value


def is_channels_last(a: np.ndarray) -> bool:
    """Whether the 4-D array `a` is laid out channels-last, (N, H, W, C) in memory, and not also C-contiguous (an
    array with one channel or one pixel per image is both: it counts as contiguous)."""
    return a.ndim == 4 and not a.flags.c_contiguous and a.transpose(0, 2, 3, 1).flags.c_contiguous


def empty(shape: tuple[int, ...], dtype: Any, channels_last: bool) -> np.ndarray:
    """An uninitialised array of logical `shape` (N, C, H, W), channels-last in memory when asked."""
    if not channels_last:
        return np.empty(shape, dtype=dtype)
    n, c, h, w = shape
    return np.empty((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)


def to_format(a: np.ndarray, fmt: memory_format) -> np.ndarray:
    """`a` itself when it already has format `fmt`, else a copy that has it (preserve_format keeps `a` as it is).
    channels_last needs a 4-D array, as in PyTorch."""
    if fmt is preserve_format:
        return a
    if fmt is contiguous_format:
        return np.ascontiguousarray(a)
    if a.ndim != 4:
        raise RuntimeError(f"memory_format: channels_last needs a 4-D tensor (N, C, H, W), got {a.ndim}-D shape "
                           f"{tuple(a.shape)}")
    if a.transpose(0, 2, 3, 1).flags.c_contiguous:
        return a
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
