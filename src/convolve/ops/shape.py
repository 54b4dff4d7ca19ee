"""Shape ops: reshape, permute, broadcast, indexing, concatenation, stacking, dtype casts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convolve.autograd import Context, Function
from convolve.ops.elementwise import unbroadcast
from convolve.tensor import Tensor


class Reshape(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        ctx.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot view shape {a.shape} ({a.size} elements) as {tuple(shape)}") from None

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        return (grad.reshape(ctx.shape),)


class Permute(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, dims: Sequence[int]) -> np.ndarray:
        if sorted(d % max(a.ndim, 1) for d in dims) != list(range(a.ndim)):
            raise ValueError(f"permute: `dims` {tuple(dims)} must be a permutation of {tuple(range(a.ndim))}")
        ctx.dims = tuple(dims)
        return np.transpose(a, ctx.dims)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        return (np.transpose(grad, np.argsort([d % grad.ndim for d in ctx.dims])),)


class BroadcastTo(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        ctx.shape = a.shape
        shape = tuple(a.shape[i - (len(shape) - a.ndim)] if n == -1 else n for i, n in enumerate(shape))
        return np.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        return (unbroadcast(grad, ctx.shape),)


class GetItem(Function):
    """Basic and advanced indexing; repeated indices accumulate their gradients (np.add.at)."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, index: Any) -> np.ndarray:
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return np.asarray(a[index])

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        out = np.zeros(ctx.shape, dtype=grad.dtype)
        if _is_basic_index(ctx.index):  # slices/ints pick each element at most once: plain assignment
            out[ctx.index] = grad
        else:
            np.add.at(out, ctx.index, grad)
        return (out,)


def _is_basic_index(index: Any) -> bool:
    """True for NumPy basic indexing (ints, slices, None, Ellipsis), which never repeats an element."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, int | np.integer | slice) or i is None or i is Ellipsis for i in parts)


class Cast(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, dtype: np.dtype, copy: bool = False) -> np.ndarray:
        ctx.dtype = a.dtype
        return a.astype(dtype, copy=copy)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        return (grad.astype(ctx.dtype, copy=False),)


class Concatenate(Function):
    @staticmethod
    def forward(ctx: Context, *arrays: np.ndarray, axis: int = 0) -> np.ndarray:
        ctx.axis = axis
        ctx.splits = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        return tuple(np.split(grad, ctx.splits, axis=ctx.axis))


class Stack(Function):
    @staticmethod
    def forward(ctx: Context, *arrays: np.ndarray, axis: int = 0) -> np.ndarray:
        ctx.axis = axis
        return np.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        n = grad.shape[ctx.axis]
        return tuple(np.take(grad, i, axis=ctx.axis) for i in range(n))


def _check_same_rank(tensors: Sequence[Tensor], name: str) -> None:
    if len(tensors) == 0:
        raise ValueError(f"{name}: `tensors` must be a non-empty sequence, got an empty one")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: `tensors[{i}]` must be a Tensor, got {type(t).__name__}")


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along an existing dimension `dim` (torch.cat); shapes must agree elsewhere."""
    _check_same_rank(tensors, "cat")
    ref = tensors[0].shape
    if not -len(ref) <= dim < len(ref):
        raise ValueError(f"cat: `dim` ({dim}) is out of range for {len(ref)}-D tensors: "
                         f"expected [{-len(ref)}, {len(ref)})")
    for i, t in enumerate(tensors):
        if t.ndim != len(ref) or any(a != b for j, (a, b) in enumerate(zip(t.shape, ref)) if j != dim % len(ref)):
            raise ValueError(f"cat: `tensors[{i}]` has shape {t.shape}, which does not match {ref} except at dim {dim}")
    return Concatenate.apply(*tensors, axis=dim)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Stack equal-shaped tensors along a new dimension `dim` (torch.stack)."""
    _check_same_rank(tensors, "stack")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: `tensors[{i}]` has shape {t.shape}, expected {tensors[0].shape}")
    return Stack.apply(*tensors, axis=dim)
