"""Pooling helpers: the input check, padding, window slices, divisors and adaptive-bin sums (sizes: geometry.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve._validate import check_float, check_ndim, check_not_empty
from convolve.nn.functional.geometry import adaptive_bins

Pair = tuple[int, int]


def pad_last2(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], value: float) -> np.ndarray:
    """`x` (..., H, W) padded with `value`: pads = ((top, bottom), (left, right)); no copy when nothing to pad."""
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    h, w = x.shape[-2:]
    out = np.full((*x.shape[:-2], top + h + bottom, left + w + right), value, dtype=x.dtype)
    out[..., top : top + h, left : left + w] = x
    return out


def window_slice(offset: int, stride: int, out: int) -> slice:
    """Positions `offset, offset + stride, ...` (`out` of them): one kernel tap across all windows."""
    return slice(offset, offset + stride * (out - 1) + 1, stride)


def first_valid_tap(out: int, kernel: int, stride: int, padding: int, dilation: int) -> np.ndarray:
    """For each window, the first kernel tap that lands in the input rather than the left padding. # (out,)"""
    starts = np.arange(out) * stride - padding
    taps = np.maximum(0, -(starts // dilation))  # ceil(-start / dilation)
    return np.minimum(taps, kernel - 1)


def avg_divisor(size: int, kernel: int, stride: int, padding: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Per window along one axis: (taps counted with padding, taps inside the input), PyTorch's avg_pool rule.

    The first count includes the zero padding but not the overhang past it that ceil_mode may add.
    """
    starts = np.arange(out) * stride - padding
    ends = np.minimum(starts + kernel, size + padding)
    with_pad = ends - starts
    valid = np.minimum(ends, size) - np.maximum(starts, 0)
    return with_pad, valid


def bin_matrix(size: int, out: int, dtype: np.dtype) -> np.ndarray:
    """0/1 matrix whose row i selects bin i of the adaptive bins. # (out, size)"""
    starts, ends = adaptive_bins(size, out)
    pos = np.arange(size)
    return ((pos >= starts[:, None]) & (pos < ends[:, None])).astype(dtype)


def contract_axis(x: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    """Apply matrix `m` (out, L) along `axis` of `x` (length L) as one GEMM: the result has length `out` there."""
    moved = np.moveaxis(x, axis, -1)
    flat = np.ascontiguousarray(moved).reshape(-1, moved.shape[-1])  # (rest, L)
    res = (flat @ m.T).reshape((*moved.shape[:-1], m.shape[0]))  # (..., out)
    return np.moveaxis(res, -1, axis)


def bin_sum(x: np.ndarray, bins: np.ndarray, axis: int) -> np.ndarray:
    """Sums of `x` over the adaptive bins (0/1 matrix (out, L)) along `axis`; identity and global bins need no GEMM."""
    out, size = bins.shape
    if out == size:  # every bin is one element
        return x
    if out == 1:  # global pooling along this axis
        return x.sum(axis=axis, keepdims=True)
    return contract_axis(x, bins, axis)


def bin_spread(g: np.ndarray, bins: np.ndarray, axis: int) -> np.ndarray:
    """Transpose of `bin_sum`: each input element receives the sum of `g` over the bins containing it."""
    out, size = bins.shape
    if out == size:
        return g
    if out == 1:
        shape = list(g.shape)
        shape[axis] = size
        return np.broadcast_to(g, tuple(shape))
    return contract_axis(g, bins.T, axis)

# ----- argument checks (pool.py's public functions) -------------------------------------------------------------
_LAYOUT = {1: "(N, C, L) or unbatched (C, L)", 2: "(N, C, H, W) or unbatched (C, H, W)"}


def check_input(input: Any, fn: str, dims: int) -> None:
    """A non-empty floating tensor of rank dims+1 (unbatched) or dims+2 (batched)."""
    check_float(input, "input", fn)
    check_ndim(input, (dims + 1, dims + 2), "input", fn, _LAYOUT[dims])
    check_not_empty(input, "input", fn)
