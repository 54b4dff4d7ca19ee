"""Reductions: sum, mean, max over `axis` (None = all) with `keepdims`."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.autograd import Context, Function


def _normalize_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """Axes as non-negative ints; a 0-d tensor accepts 0 and -1 (PyTorch) and reduces over nothing."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    out = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"reduction: `axis`/`dim` {a} is out of range for a tensor with {ndim} dimensions")
        if ndim:
            out.append(int(a) % ndim)
    return tuple(out)


def _expand_back(grad: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Re-insert reduced axes (if dropped) so `grad` broadcasts against the input's shape."""
    if not keepdims:
        for a in sorted(axes):
            grad = np.expand_dims(grad, a)
    return grad


class Sum(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _normalize_axes(axis, a.ndim), keepdims
        return np.asarray(a.sum(axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        g = _expand_back(grad, ctx.shape, ctx.axes, ctx.keepdims)
        return (np.broadcast_to(g, ctx.shape).copy(),)


class Mean(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        if a.dtype.kind != "f":
            raise TypeError(f"mean: `input` must be a floating-point tensor, got dtype {a.dtype} (convert it first)")
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _normalize_axes(axis, a.ndim), keepdims
        ctx.count = int(np.prod([a.shape[i] for i in ctx.axes])) if a.ndim else 1
        return np.asarray(a.mean(axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        g = _expand_back(grad, ctx.shape, ctx.axes, ctx.keepdims) / ctx.count
        return (np.broadcast_to(g, ctx.shape).astype(grad.dtype, copy=True),)


class Max(Function):
    """Maximum; ties share the gradient equally (PyTorch's amax convention)."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        axes = _normalize_axes(axis, a.ndim)
        out = a.max(axis=axes, keepdims=True)
        ctx.save_for_backward(a, out)
        ctx.axes, ctx.keepdims = axes, keepdims
        return np.asarray(out if keepdims else np.squeeze(out, axis=axes))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        a, out = ctx.saved
        mask = a == out
        count = mask.sum(axis=ctx.axes, keepdims=True)
        g = _expand_back(grad, a.shape, ctx.axes, ctx.keepdims)
        return ((mask * (g / count)).astype(grad.dtype, copy=False),)
