"""Max, average and adaptive pooling (1-D and 2-D) with PyTorch's signatures, ceil_mode and border rules.

Pooling has no parameters. Every op works on the last one or two axes, so batched (N, C, H, W) and unbatched
(C, H, W) inputs take the same path. Window taps are strided slices of the padded input: max pooling is an
elementwise maximum over the kh*kw slices and its backward scatters the gradient to the arg-max of each window
("switches"; ties go to the first maximum in row-major order, as PyTorch). Global pooling is output_size=1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.autograd import Context, Function
from convolve.engines.policy import policy
from convolve.nn.functional._pool_windows import (
    avg_divisor,
    bin_matrix,
    bin_spread,
    bin_sum,
    check_input,
    first_valid_tap,
    pad_last2,
    window_slice,
)
from convolve.nn.functional.geometry import (
    Pair,
    adaptive_bins,
    adaptive_size,
    is_int,
    pooled_size,
    right_padding,
    window_args,
)
from convolve.tensor import Tensor

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "max_pool1d",
    "max_pool2d",
]


def _taps(kernel: Pair, stride: Pair, dilation: Pair, out: Pair) -> list[tuple[int, slice, slice]]:
    """(tap number, row slice, column slice) of every kernel tap, in row-major order, over the padded input."""
    taps = []
    for a in range(kernel[0]):
        rows = window_slice(a * dilation[0], stride[0], out[0])
        for b in range(kernel[1]):
            taps.append((a * kernel[1] + b, rows, window_slice(b * dilation[1], stride[1], out[1])))
    return taps


class MaxPool2dFunction(Function):
    """Max over each (dilated) window of the last two axes; backward routes the gradient to the arg-max."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
                out: Pair, indices: list[np.ndarray] | None = None) -> np.ndarray:
        (h, w), (ph, pw) = x.shape[-2:], padding
        pads = ((ph, right_padding(h, kernel[0], stride[0], ph, dilation[0], out[0])),
                (pw, right_padding(w, kernel[1], stride[1], pw, dilation[1], out[1])))
        xp = pad_last2(x, pads, -np.inf)  # (..., Hp, Wp)
        taps = _taps(kernel, stride, dilation, out)
        y = xp[..., taps[0][1], taps[0][2]].copy()  # (..., oh, ow)
        for _, rows, cols in taps[1:]:
            np.maximum(y, xp[..., rows, cols], out=y)
        ctx.save_for_backward(xp, y)
        ctx.window, ctx.taps, ctx.pads, ctx.shape = (kernel, stride, padding, dilation, out), taps, pads, x.shape
        ctx.arg = None  # the arg-max tap is found in backward, or here when indices are asked for
        if indices is not None:
            ctx.arg = arg = _argmax_tap(xp, y, taps, *ctx.window)
            tap_row, tap_col = np.divmod(arg, kernel[1])
            in_row = (np.arange(out[0]) * stride[0] - ph)[:, None] + tap_row.astype(np.int64) * dilation[0]
            in_col = (np.arange(out[1]) * stride[1] - pw)[None, :] + tap_col.astype(np.int64) * dilation[1]
            indices.append(in_row * w + in_col)  # (..., oh, ow) flat index into the H*W plane, as PyTorch
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        xp, y = ctx.saved
        arg = _argmax_tap(xp, y, ctx.taps, *ctx.window) if ctx.arg is None else ctx.arg  # (..., oh, ow)
        gxp = np.zeros(xp.shape, dtype=grad.dtype)  # (..., Hp, Wp)
        target = _argmax_flat_index(arg, xp.shape, *ctx.window)  # (..., oh, ow) into gxp.ravel()
        np.add.at(gxp.reshape(-1), target.ravel(), grad.ravel())  # overlapping windows accumulate
        (top, _), (left, _) = ctx.pads
        h, w = ctx.shape[-2:]
        return (np.ascontiguousarray(gxp[..., top : top + h, left : left + w]),)


def _argmax_tap(xp: np.ndarray, y: np.ndarray, taps: list[tuple[int, slice, slice]], kernel: Pair, stride: Pair,
                padding: Pair, dilation: Pair, out: Pair) -> np.ndarray:
    """The tap holding each window's maximum `y`, as PyTorch's scan: the first maximum, or the last NaN;
    a window of -inf picks its first tap inside the input. # (..., oh, ow)
    """
    first_row = first_valid_tap(out[0], kernel[0], stride[0], padding[0], dilation[0])
    first_col = first_valid_tap(out[1], kernel[1], stride[1], padding[1], dilation[1])
    tap_dtype = np.int16 if kernel[0] * kernel[1] < 2**15 else np.int32
    first = (first_row[:, None] * kernel[1] + first_col[None, :]).astype(tap_dtype)  # (oh, ow)
    if np.isnan(y).any():
        return _scan_argmax(xp, taps, first)
    arg = np.zeros(y.shape, dtype=tap_dtype)
    for tap, rows, cols in reversed(taps):  # the earliest tap equal to the maximum is written last
        _assign_where(arg, np.asarray(tap, dtype=tap_dtype), xp[..., rows, cols] == y)
    if padding != (0, 0):
        np.copyto(arg, first, where=y == -np.inf)  # otherwise a padded tap (-inf too) would be taken
    return arg


def _argmax_flat_index(arg: np.ndarray, padded_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair,
                       dilation: Pair, out: Pair) -> np.ndarray:
    """Flat position in the padded input (all leading axes included) of each window's arg-max tap. # (..., oh, ow)"""
    hp, wp = padded_shape[-2:]
    tap_offset = (np.arange(kernel[0])[:, None] * dilation[0] * wp + np.arange(kernel[1])[None, :] * dilation[1])
    window_start = (np.arange(out[0]) * stride[0] * wp)[:, None] + (np.arange(out[1]) * stride[1])[None, :]
    plane_start = np.arange(int(np.prod(padded_shape[:-2], dtype=np.int64)), dtype=np.int64) * (hp * wp)
    index = tap_offset.ravel().astype(np.int64)[arg]  # (..., oh, ow)
    index += window_start
    index += plane_start.reshape((*padded_shape[:-2], 1, 1))
    return index


def _assign_where(target: np.ndarray, value: np.ndarray, mask: np.ndarray) -> None:
    """target[mask] = value (integers) without branches: np.copyto(where=) is ~10x slower on random masks."""
    delta = np.subtract(value, target, dtype=target.dtype)
    delta *= mask
    target += delta


def _scan_argmax(xp: np.ndarray, taps: list[tuple[int, slice, slice]], first: np.ndarray) -> np.ndarray:
    """PyTorch's scan literally (strict >, a NaN always wins), for inputs with NaN. # (..., oh, ow)"""
    arg = np.broadcast_to(first, xp.shape[:-2] + first.shape).copy()
    best = np.full(arg.shape, -np.inf, dtype=xp.dtype)
    for tap, rows, cols in taps:
        candidate = xp[..., rows, cols]
        better = (candidate > best) | np.isnan(candidate)
        np.copyto(best, candidate, where=better)
        np.copyto(arg, tap, where=better)
    return arg


class AvgPool2dFunction(Function):
    """Mean over each window of the last two axes with PyTorch's divisor rules; backward spreads evenly."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, out: Pair,
                count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
        (h, w), (ph, pw) = x.shape[-2:], padding
        pads = ((ph, right_padding(h, kernel[0], stride[0], ph, 1, out[0])),
                (pw, right_padding(w, kernel[1], stride[1], pw, 1, out[1])))
        xp = pad_last2(x, pads, 0.0)  # (..., Hp, Wp)
        rows = xp[..., window_slice(0, stride[0], out[0]), :].copy()  # (..., oh, Wp): sum over kernel rows
        for a in range(1, kernel[0]):
            rows += xp[..., window_slice(a, stride[0], out[0]), :]
        y = rows[..., window_slice(0, stride[1], out[1])].copy()  # (..., oh, ow): then over kernel columns
        for b in range(1, kernel[1]):
            y += rows[..., window_slice(b, stride[1], out[1])]
        if divisor_override is not None:
            divisor: Any = divisor_override
        else:
            with_pad_h, valid_h = avg_divisor(h, kernel[0], stride[0], ph, out[0])
            with_pad_w, valid_w = avg_divisor(w, kernel[1], stride[1], pw, out[1])
            counts = (with_pad_h, with_pad_w) if count_include_pad else (valid_h, valid_w)
            divisor = (counts[0][:, None] * counts[1][None, :]).astype(x.dtype)  # (oh, ow)
        ctx.divisor, ctx.kernel, ctx.stride, ctx.out = divisor, kernel, stride, out
        ctx.pads, ctx.padded_shape, ctx.shape = pads, xp.shape, x.shape
        return np.asarray(y / divisor, dtype=x.dtype)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        kernel, stride, out = ctx.kernel, ctx.stride, ctx.out
        g = grad / ctx.divisor  # (..., oh, ow)
        g_rows = np.zeros((*ctx.padded_shape[:-2], out[0], ctx.padded_shape[-1]), dtype=grad.dtype)  # (.., oh, Wp)
        for b in range(kernel[1]):
            g_rows[..., window_slice(b, stride[1], out[1])] += g
        gxp = np.zeros(ctx.padded_shape, dtype=grad.dtype)  # (..., Hp, Wp)
        for a in range(kernel[0]):
            gxp[..., window_slice(a, stride[0], out[0]), :] += g_rows
        (top, _), (left, _) = ctx.pads
        h, w = ctx.shape[-2:]
        return (np.ascontiguousarray(gxp[..., top : top + h, left : left + w]),)


class AdaptiveAvgPool2dFunction(Function):
    """Mean over PyTorch's adaptive bins of the last two axes, as two GEMMs with 0/1 bin matrices (sums if global)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, out: Pair) -> np.ndarray:
        h, w = x.shape[-2:]
        bins_h, bins_w = bin_matrix(h, out[0], x.dtype), bin_matrix(w, out[1], x.dtype)  # (oh, H), (ow, W)
        y = bin_sum(bin_sum(x, bins_w, -1), bins_h, -2)  # (..., H, ow) then (..., oh, ow)
        ctx.count = bins_h.sum(axis=1)[:, None] * bins_w.sum(axis=1)[None, :]  # (oh, ow)
        ctx.bins_h, ctx.bins_w, ctx.shape = bins_h, bins_w, x.shape
        return np.asarray(y / ctx.count, dtype=x.dtype)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        g = bin_spread(bin_spread(grad / ctx.count, ctx.bins_h, -2), ctx.bins_w, -1)  # (..., H, ow) then (..., H, W)
        return (np.ascontiguousarray(g, dtype=grad.dtype),)


def _segment_max(x: np.ndarray, size: int, out: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Max over adaptive bins along `axis` and the position of each (PyTorch's scan order and NaN rule).

    Loops over whichever is fewer: the bins (each a max/argmax over a slice), or the offsets inside a bin
    (gathers; taps past a bin's end are clamped to its last element, which cannot beat the running maximum).
    """
    starts, ends = adaptive_bins(size, out)
    widest = int((ends - starts).max())
    if out < widest and not np.isnan(x).any():  # np.argmax takes the first NaN, PyTorch the last: scan then
        cut = [slice(None)] * x.ndim
        best_parts, pos_parts = [], []
        for start, end in zip(starts, ends):
            cut[axis] = slice(start, end)
            segment = x[tuple(cut)]
            best_parts.append(segment.max(axis=axis, keepdims=True))
            pos_parts.append(segment.argmax(axis=axis, keepdims=True) + start)  # the first maximum
        return np.concatenate(best_parts, axis=axis), np.concatenate(pos_parts, axis=axis)
    along = tuple(range(axis + 1, 0))  # expand (out,) vectors to broadcast along `axis`
    best = np.take(x, starts, axis=axis)
    offset_of_best = np.zeros(best.shape, dtype=np.int32)
    for offset in range(1, widest):
        taps = np.minimum(offset, ends - starts - 1)
        candidate = np.take(x, starts + taps, axis=axis)
        better = (candidate > best) | np.isnan(candidate)
        np.maximum(best, candidate, out=best)  # NaN propagates, as it wins PyTorch's scan
        _assign_where(offset_of_best, np.expand_dims(taps, along).astype(np.int32), better)
    return best, offset_of_best + np.expand_dims(starts, along)


class AdaptiveMaxPool2dFunction(Function):
    """Max over PyTorch's adaptive bins of the last two axes; backward routes the gradient to the arg-max."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, out: Pair, indices: list[np.ndarray] | None = None) -> np.ndarray:
        # Max over columns, then rows: the first row holding the bin's maximum, and in it the first column, is
        # exactly the first maximum of PyTorch's row-major scan (and its last NaN), so the split is exact.
        h, w = x.shape[-2:]
        row_max, col = _segment_max(x, w, out[1], -1)  # (..., H, ow): per row, max over each column bin
        y, row = _segment_max(row_max, h, out[0], -2)  # (..., oh, ow)
        flat = row.astype(np.int64) * w + np.take_along_axis(col, row, axis=-2)  # (..., oh, ow) into H*W
        ctx.save_for_backward(flat)
        ctx.shape = x.shape
        if indices is not None:
            indices.append(flat)
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (flat,) = ctx.saved
        plane = ctx.shape[-2] * ctx.shape[-1]
        lead = int(np.prod(ctx.shape[:-2], dtype=np.int64))
        target = flat.reshape(lead, -1) + (np.arange(lead) * plane)[:, None]  # (lead, oh*ow) into the flat input
        gx = np.zeros(lead * plane, dtype=grad.dtype)
        np.add.at(gx, target.ravel(), grad.ravel())  # bins may overlap: repeated indices accumulate
        return (gx.reshape(ctx.shape),)


def _as_2d(input: Tensor, dims: int) -> Tensor:
    """1-D pooling runs as 2-D pooling over a height-1 view: (..., L) -> (..., 1, L)."""
    return input if dims == 2 else input.reshape(*input.shape[:-1], 1, input.shape[-1])


def _from_2d(y: Tensor, dims: int) -> Tensor:
    return y if dims == 2 else y.reshape(*y.shape[:-2], y.shape[-1])


def _pair(values: tuple[int, ...], fill: int) -> Pair:
    return (values[0], values[1]) if len(values) == 2 else (fill, values[0])


# ----- public functions -----------------------------------------------------------------------------------------
def _max_pool(fn: str, dims: int, input: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
              ceil_mode: bool, return_indices: bool) -> Tensor | tuple[Tensor, Tensor]:
    check_input(input, fn, dims)
    kernel, strides, pads, dilations = window_args(fn, dims, kernel_size, stride, padding, dilation)
    out = pooled_size(fn, input, kernel, strides, pads, dilations, ceil_mode)
    sink: list[np.ndarray] | None = [] if return_indices else None
    y = policy.apply(MaxPool2dFunction, _as_2d(input, dims), kernel=_pair(kernel, 1), stride=_pair(strides, 1),
                     padding=_pair(pads, 0), dilation=_pair(dilations, 1), out=_pair(out, 1), indices=sink)
    y = _from_2d(y, dims)
    if sink is None:
        return y
    return y, Tensor._from_array(sink[0].reshape(y.shape))


def max_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """1-D max pooling over (N, C, L) or (C, L), as `torch.nn.functional.max_pool1d`; padding is -inf."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """2-D max pooling over (N, C, H, W) or (C, H, W), as `torch.nn.functional.max_pool2d`; padding is -inf.

    `return_indices=True` also returns int64 flat indices into each H*W input plane (PyTorch's convention).
    A window made only of padding (a dilated kernel wider than the input) gives -inf and passes no gradient.
    """
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_pool(fn: str, dims: int, input: Tensor, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
              count_include_pad: bool, divisor_override: Any) -> Tensor:
    check_input(input, fn, dims)
    kernel, strides, pads, ones = window_args(fn, dims, kernel_size, stride, padding, 1)
    check_divisor_override(fn, divisor_override)
    out = pooled_size(fn, input, kernel, strides, pads, ones, ceil_mode)
    y = policy.apply(AvgPool2dFunction, _as_2d(input, dims), kernel=_pair(kernel, 1), stride=_pair(strides, 1),
                     padding=_pair(pads, 0), out=_pair(out, 1), count_include_pad=bool(count_include_pad),
                     divisor_override=None if divisor_override is None else int(divisor_override))
    return _from_2d(y, dims)


def check_divisor_override(fn: str, divisor_override: Any) -> None:
    """None or a non-zero int (PyTorch's rule), for the functional and the layer alike."""
    if divisor_override is not None and (not is_int(divisor_override) or divisor_override == 0):
        raise ValueError(f"{fn}: `divisor_override` must be None or a non-zero int, got {divisor_override!r}")


def avg_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """1-D average pooling over (N, C, L) or (C, L), as `torch.nn.functional.avg_pool1d` (zero padding)."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """2-D average pooling over (N, C, H, W) or (C, H, W), as `torch.nn.functional.avg_pool2d`.

    The divisor is `divisor_override`, else the window's taps inside the input plus (count_include_pad) its
    zero padding; with ceil_mode, the overhang past the padding is never counted.
    """
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def adaptive_avg_pool1d(input: Tensor, output_size: Any) -> Tensor:
    """Average over `output_size` adaptive bins of (N, C, L) or (C, L); output_size=1 is global average pooling."""
    check_input(input, "adaptive_avg_pool1d", 1)
    out = adaptive_size("adaptive_avg_pool1d", input, output_size, 1)
    return _from_2d(AdaptiveAvgPool2dFunction.apply(_as_2d(input, 1), out=out), 1)


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Average over adaptive bins (start=floor(i*H/out), end=ceil((i+1)*H/out)) of (N, C, H, W) or (C, H, W).

    `output_size` is an int or (oh, ow), None keeping that dimension; output_size=1 is global average pooling.
    """
    check_input(input, "adaptive_avg_pool2d", 2)
    return AdaptiveAvgPool2dFunction.apply(input, out=adaptive_size("adaptive_avg_pool2d", input, output_size, 2))


def _adaptive_max(fn: str, dims: int, input: Tensor, output_size: Any,
                  return_indices: bool) -> Tensor | tuple[Tensor, Tensor]:
    check_input(input, fn, dims)
    out = adaptive_size(fn, input, output_size, dims)
    sink: list[np.ndarray] | None = [] if return_indices else None
    y = _from_2d(AdaptiveMaxPool2dFunction.apply(_as_2d(input, dims), out=out, indices=sink), dims)
    if sink is None:
        return y
    return y, Tensor._from_array(sink[0].reshape(y.shape))


def adaptive_max_pool1d(input: Tensor, output_size: Any,
                        return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Max over `output_size` adaptive bins of (N, C, L) or (C, L); output_size=1 is global max pooling."""
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input: Tensor, output_size: Any,
                        return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Max over adaptive bins of (N, C, H, W) or (C, H, W), as `torch.nn.functional.adaptive_max_pool2d`.

    `output_size` is an int or (oh, ow), None keeping that dimension; output_size=1 is global max pooling.
    """
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)
