"""Pooling helpers: argument checks, output sizes (PyTorch's ceil_mode rule), padding, window slices, bins."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve._validate import check_float, check_ndim, check_non_negative, check_not_empty, check_positive, ntuple
from convolve.tensor import Tensor

Pair = tuple[int, int]


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Number of windows along one axis, as PyTorch: floor (or ceil) of (L + 2P - D(K-1) - 1) / S, plus 1.

    With `ceil_mode` the last window must still start inside the input or its left padding.
    """
    numerator = size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def right_padding(size: int, kernel: int, stride: int, padding: int, dilation: int, out: int) -> int:
    """Padding needed after the input so that all `out` windows fit (ceil_mode windows may pass the padding)."""
    needed = (out - 1) * stride + dilation * (kernel - 1) + 1
    return max(needed - size - padding, 0)


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


def adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive pooling bins along one axis: start = floor(i*L/out), end = ceil((i+1)*L/out). # (out,), (out,)"""
    i = np.arange(out)
    starts = (i * size) // out
    ends = -((-(i + 1) * size) // out)
    return starts, ends


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


def window_args(fn: str, dims: int, kernel_size: Any, stride: Any, padding: Any,
                 dilation: Any) -> tuple[tuple[int, ...], ...]:
    """kernel, stride (default: kernel), padding, dilation as `dims`-tuples, checked as PyTorch does."""
    kernel = ntuple(kernel_size, dims, "kernel_size", fn)
    check_positive(kernel, "kernel_size", fn)
    strides = kernel if stride is None else ntuple(stride, dims, "stride", fn)
    check_positive(strides, "stride", fn)
    pads = ntuple(padding, dims, "padding", fn)
    check_non_negative(pads, "padding", fn)
    dilations = ntuple(dilation, dims, "dilation", fn)
    check_positive(dilations, "dilation", fn)
    if any(p > k // 2 for p, k in zip(pads, kernel)):
        raise ValueError(f"{fn}: `padding` must be at most half of `kernel_size` (padding <= kernel_size // 2), "
                         f"got padding={_show(pads)} and kernel_size={_show(kernel)}")
    return kernel, strides, pads, dilations


def _show(values: tuple[int, ...]) -> Any:
    return values[0] if len(values) == 1 else values


def pooled_size(fn: str, input: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...],
                 dilation: tuple[int, ...], ceil_mode: bool) -> tuple[int, ...]:
    """Windows per spatial axis; an error in PyTorch's words when an axis would have none."""
    dims = len(kernel)
    sizes = input.shape[-dims:]
    out = tuple(pool_output_size(*args, ceil_mode) for args in zip(sizes, kernel, stride, padding, dilation))
    if any(o < 1 for o in out):
        channels = input.shape[-dims - 1]
        given, calc = "x".join(map(str, (channels, *sizes))), "x".join(map(str, (channels, *out)))
        raise ValueError(f"{fn}: Given input size: ({given}). Calculated output size: ({calc}). Output size is too "
                         f"small (kernel_size={_show(kernel)}, stride={_show(stride)}, padding={_show(padding)}, "
                         f"dilation={_show(dilation)}, ceil_mode={ceil_mode})")
    return out


def adaptive_size(fn: str, input: Tensor, output_size: Any, dims: int) -> Pair:
    """output_size as a (oh, ow) pair; None keeps that input dimension (2-D only, as PyTorch)."""
    items = output_size if isinstance(output_size, tuple | list) else (output_size,) * dims
    ok = len(items) == dims and all(
        (v is None and dims == 2) or (isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1)
        for v in items
    )
    if not ok:
        keep = " (None keeps that input dimension)" if dims == 2 else ""
        raise ValueError(f"{fn}: `output_size` must be a positive int or a tuple of {dims} positive ints{keep}, "
                         f"got {output_size!r}")
    sizes = input.shape[-dims:]
    out = tuple(int(s if v is None else v) for v, s in zip(items, sizes))
    return (1, out[0]) if dims == 1 else (out[0], out[1])
