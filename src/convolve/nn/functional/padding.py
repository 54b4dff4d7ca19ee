"""`pad`: constant, reflect, replicate and circular padding (torch.nn.functional.pad), with its backward.

The padding tuple lists the last dimension first, as PyTorch: (left, right) pads the last dimension,
(left, right, top, bottom) the last two. The backward pass of constant padding crops the gradient; for the
other modes every padded pixel is a copy of a source pixel, so its gradient is folded back onto that source:

    reflect    x = [a b c d]  ->  [c b | a b c d | c b]:  the left border's gradient adds onto b, c (mirrored)
    replicate  x = [a b c d]  ->  [a a | a b c d | d d]:  the border gradients add onto a and d
    circular   x = [a b c d]  ->  [c d | a b c d | a b]:  the left border's gradient adds onto c, d (wrapped)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve._validate import check_tensor
from convolve.autograd import Context, Function
from convolve.tensor import Tensor

__all__ = ["pad"]

MODES = ("constant", "reflect", "replicate", "circular")
_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class PadFunction(Function):
    """Pad with `widths` = ((before, after) per axis); negative widths (constant mode only) crop."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, widths: tuple[tuple[int, int], ...], mode: str,
                value: float) -> np.ndarray:
        ctx.widths, ctx.mode, ctx.shape = widths, mode, x.shape
        grow = tuple((max(lo, 0), max(hi, 0)) for lo, hi in widths)
        if mode == "constant":
            out = np.pad(x, grow, mode="constant", constant_values=value)
        else:
            out = np.pad(x, grow, mode=_NUMPY_MODE[mode])  # type: ignore[call-overload]
        crop = tuple(slice(-min(lo, 0), out.shape[i] + min(hi, 0)) for i, (lo, hi) in enumerate(widths))
        return out[crop] if any(lo < 0 or hi < 0 for lo, hi in widths) else out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        if ctx.mode == "constant":  # crop the padded border off; zero-fill where the forward cropped
            return (_constant_backward(grad, ctx.widths, ctx.shape),)
        for axis, (lo, hi) in enumerate(ctx.widths):
            if lo or hi:
                grad = _fold(grad, axis, lo, hi, ctx.mode)
        return (grad,)


def _constant_backward(grad: np.ndarray, widths: tuple[tuple[int, int], ...], shape: tuple[int, ...]) -> np.ndarray:
    """Gradient of constant padding: the interior of `grad`, placed back where the input was (negative pads = 0)."""
    out = np.zeros(shape, dtype=grad.dtype)
    src = tuple(slice(max(lo, 0), max(lo, 0) + n + min(lo, 0) + min(hi, 0)) for (lo, hi), n in zip(widths, shape))
    dst = tuple(slice(-min(lo, 0), n + min(hi, 0)) for (lo, hi), n in zip(widths, shape))
    out[dst] = grad[src]
    return out


def _fold(grad: np.ndarray, axis: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """Undo the padding of one axis: the interior of `grad` plus each border's gradient added to its source."""
    g = np.moveaxis(grad, axis, -1)  # padded axis last: (..., lo + n + hi)
    n = g.shape[-1] - lo - hi
    out = g[..., lo:lo + n].copy()  # (..., n)
    left, right = g[..., :lo], g[..., lo + n:]
    if mode == "reflect":  # left[i] was x[lo - i], right[i] was x[n - 2 - i]
        out[..., 1:lo + 1] += left[..., ::-1]
        out[..., n - 1 - hi:n - 1] += right[..., ::-1]
    elif mode == "replicate":  # every left pixel was x[0], every right pixel x[n - 1]
        out[..., 0] += left.sum(axis=-1)
        out[..., n - 1] += right.sum(axis=-1)
    else:  # circular: left[i] was x[n - lo + i], right[i] was x[i]
        out[..., n - lo:] += left
        out[..., :hi] += right
    return np.moveaxis(out, -1, axis)


def pad(input: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last len(pad)/2 dimensions of `input` (torch.nn.functional.pad); `pad` lists the last dim first."""
    fn = "pad"
    check_tensor(input, "input", fn)
    if mode not in MODES:
        raise ValueError(f"{fn}: `mode` must be one of {', '.join(repr(m) for m in MODES)}, got {mode!r}")
    if not isinstance(pad, tuple | list) or not all(isinstance(p, int | np.integer) for p in pad):
        raise TypeError(f"{fn}: `pad` must be a tuple of ints (left, right, top, bottom, ...), got {pad!r}")
    if len(pad) % 2:
        raise ValueError(f"{fn}: `pad` must have an even length (a (before, after) pair per dimension), "
                         f"got {len(pad)} values {tuple(pad)}")
    n_dims = len(pad) // 2
    if n_dims > input.ndim:
        raise ValueError(f"{fn}: `pad` {tuple(pad)} pads {n_dims} dimensions but `input` has only {input.ndim}")
    pairs = [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(n_dims)]  # last dim first
    widths = tuple([(0, 0)] * (input.ndim - n_dims) + pairs[::-1])
    if mode == "constant":
        _check_crop(input, widths)
        return PadFunction.apply(input, widths=widths, mode=mode, value=0.0 if value is None else value)
    _check_non_constant(input, widths, n_dims, mode, value)
    return PadFunction.apply(input, widths=widths, mode=mode, value=0.0)


def _check_crop(input: Tensor, widths: tuple[tuple[int, int], ...]) -> None:
    """Negative (cropping) constant padding may empty an axis (as PyTorch) but not go below zero."""
    for axis, ((lo, hi), n) in enumerate(zip(widths, input.shape)):
        if n + lo + hi < 0:
            raise ValueError(f"pad: padding ({lo}, {hi}) would leave dimension {axis} of size {n} with "
                             f"{n + lo + hi} elements")


def _check_non_constant(input: Tensor, widths: tuple[tuple[int, int], ...], n_dims: int, mode: str,
                        value: float | None) -> None:
    """PyTorch's rules for reflect/replicate/circular: 1-3 trailing dims, input rank n+1 or n+2, sizes in range."""
    if value not in (None, 0):
        raise ValueError(f"pad: `value` only applies to mode='constant', got value={value!r} with mode={mode!r}")
    if n_dims > 3 or input.ndim not in (n_dims + 1, n_dims + 2):
        raise ValueError(f"pad: mode={mode!r} pads 1-3 trailing dimensions of a batched or unbatched input "
                         f"(rank n+1 or n+2); `pad` pads {n_dims} dimensions but `input` is {input.ndim}-D")
    for axis, ((lo, hi), n) in enumerate(zip(widths, input.shape)):
        if lo < 0 or hi < 0:
            raise ValueError(f"pad: negative padding ({lo}, {hi}) is only supported with mode='constant'")
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(f"pad: reflect padding ({lo}, {hi}) must be smaller than the input size {n} "
                             f"of dimension {axis}")
        if mode == "circular" and (lo > n or hi > n):
            raise ValueError(f"pad: circular padding ({lo}, {hi}) must not exceed the input size {n} "
                             f"of dimension {axis} (it would wrap around more than once)")
        if mode == "replicate" and n == 0 and (lo or hi):
            raise ValueError(f"pad: replicate padding needs a non-empty dimension {axis}, got size 0")
