"""Element-wise arithmetic with broadcasting; each backward sums its gradient back to the input's shape."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.autograd import Context, Function


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, so it has `shape` again."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def _needs(ctx: Context, i: int) -> bool:
    return ctx.needs_input_grad[i]


class Add(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.asarray(a + b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        sa, sb = ctx.shapes
        return (unbroadcast(grad, sa) if _needs(ctx, 0) else None, unbroadcast(grad, sb) if _needs(ctx, 1) else None)


class Sub(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.asarray(a - b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        sa, sb = ctx.shapes
        return (unbroadcast(grad, sa) if _needs(ctx, 0) else None, unbroadcast(-grad, sb) if _needs(ctx, 1) else None)


class Mul(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return np.asarray(a * b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        a, b = ctx.saved
        ga = unbroadcast(grad * b, np.shape(a)) if _needs(ctx, 0) else None
        gb = unbroadcast(grad * a, np.shape(b)) if _needs(ctx, 1) else None
        return ga, gb


class Div(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return np.asarray(a / b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        a, b = ctx.saved
        ga = unbroadcast(grad / b, np.shape(a)) if _needs(ctx, 0) else None
        gb = unbroadcast(-grad * a / (b * b), np.shape(b)) if _needs(ctx, 1) else None
        return ga, gb


class Pow(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.asarray(np.power(a, b))
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        a, b, out = ctx.saved
        ga = None
        if _needs(ctx, 0):  # b * a^(b-1), and 0 where b == 0 (PyTorch; a^-1 at a = 0 would make it nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                da = np.where(b == 0, 0, b * np.power(a, b - 1)).astype(grad.dtype, copy=False)
            ga = unbroadcast(grad * da, np.shape(a))
        gb = None
        if _needs(ctx, 1):  # a^b log a; where a <= 0 we give 0 (PyTorch gives nan for a < 0)
            log_a = np.log(np.where(a > 0, a, 1))
            gb = unbroadcast(grad * out * log_a, np.shape(b))
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        return np.negative(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        return (-grad,)


class MatMul(Function):
    """a @ b for 1-D/2-D and batched (broadcast) operands."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return np.asarray(a @ b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        a, b = ctx.saved
        a2 = a[None, :] if a.ndim == 1 else a  # promote vectors to matrices as matmul does
        b2 = b[:, None] if b.ndim == 1 else b
        g = grad
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        ga = gb = None
        if _needs(ctx, 0):
            ga = unbroadcast(g @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if _needs(ctx, 1):
            gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
        return ga, gb


class Exp(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (out,) = ctx.saved
        return (grad * out,)


class Log(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (a,) = ctx.saved
        return (grad / a,)


class Sqrt(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (out,) = ctx.saved
        return (grad / (2 * out),)


class Abs(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (a,) = ctx.saved
        return (grad * np.sign(a),)


class Clamp(Function):
    """clamp(x, lo, hi); the gradient passes where lo <= x <= hi (PyTorch's convention at the bounds)."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
        mask = np.ones(a.shape, dtype=bool)
        if lo is not None:
            mask &= a >= lo
        if hi is not None:
            mask &= a <= hi
        ctx.save_for_backward(mask)
        return np.clip(a, lo, hi)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (mask,) = ctx.saved
        return (grad * mask,)


class Where(Function):
    """where(condition, a, b): the gradient goes to `a` where the condition holds, to `b` elsewhere."""

    @staticmethod
    def forward(ctx: Context, condition: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(condition)
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.asarray(np.where(condition, a, b))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (condition,) = ctx.saved
        sa, sb = ctx.shapes
        ga = unbroadcast(np.where(condition, grad, 0), sa).astype(grad.dtype, copy=False) if _needs(ctx, 1) else None
        gb = unbroadcast(np.where(condition, 0, grad), sb).astype(grad.dtype, copy=False) if _needs(ctx, 2) else None
        return None, ga, gb


class Maximum(Function):
    """Element-wise maximum; ties split the gradient equally between the two inputs (PyTorch's rule)."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a, b)
        return np.asarray(np.maximum(a, b))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        a, b = ctx.saved
        share_a = np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0)).astype(grad.dtype)
        ga = unbroadcast(grad * share_a, np.shape(a)) if _needs(ctx, 0) else None
        gb = unbroadcast(grad * (1 - share_a), np.shape(b)) if _needs(ctx, 1) else None
        return ga, gb
