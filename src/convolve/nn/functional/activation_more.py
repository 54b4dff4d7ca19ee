"""softplus, hardswish, mish and prelu, as `torch.nn.functional`; each a Function with its derivative.

    softplus(x) = log(1 + e^(beta x)) / beta (x itself where beta x > threshold)    d: sigmoid(beta x)
    hardswish(x) = x relu6(x + 3) / 6                  d: 0 below -3, 1 above 3, (2x + 3) / 6 between
    mish(x) = x tanh(softplus(x))                      d: tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2)
    prelu(x, w) = x if x > 0 else w x  (w per channel, dim 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve._validate import check_float
from convolve.autograd import Context, Function
from convolve.tensor import Tensor

__all__ = ["hardswish", "mish", "prelu", "softplus"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class SoftplusFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, beta: float, threshold: float) -> np.ndarray:
        bx = x * beta
        linear = bx > threshold
        ctx.save_for_backward(bx, linear)
        return np.where(linear, x, _softplus(bx) / beta).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        bx, linear = ctx.saved
        return (grad * np.where(linear, 1.0, _sigmoid(bx)).astype(grad.dtype, copy=False),)


class HardswishFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return x * np.clip(x + 3, 0, 6) / 6

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (x,) = ctx.saved
        slope = np.where(x < -3, 0.0, np.where(x > 3, 1.0, (2 * x + 3) / 6))  # PyTorch: 1 from x >= 3 on
        slope = np.where(x == 3, 1.0, slope)
        return (grad * slope.astype(grad.dtype, copy=False),)


class MishFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        t = np.tanh(_softplus(x))
        ctx.save_for_backward(x, t)
        return x * t

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, t = ctx.saved
        return (grad * (t + x * _sigmoid(x) * (1 - t * t)),)


class PReLUFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        wb = w.reshape((1, -1) + (1,) * (x.ndim - 2)) if x.ndim >= 2 and w.size > 1 else w.reshape(())
        ctx.save_for_backward(x, wb)
        ctx.w_shape = w.shape
        return np.where(x > 0, x, wb * x)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, wb = ctx.saved
        gx = np.where(x > 0, grad, wb * grad)
        gw_full = np.where(x > 0, 0, x * grad)
        if wb.ndim == 0:
            gw = np.asarray(gw_full.sum()).reshape(ctx.w_shape)
        else:
            gw = gw_full.sum(axis=tuple(a for a in range(x.ndim) if a != 1)).reshape(ctx.w_shape)
        return gx, gw.astype(grad.dtype, copy=False)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """A smooth ReLU: log(1 + exp(beta x)) / beta, linear where beta x > threshold."""
    if not beta > 0:
        raise ValueError(f"softplus: `beta` must be positive, got {beta}")
    return SoftplusFunction.apply(check_float(input, "input", "softplus"), beta=beta, threshold=threshold)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6 (MobileNetV3); `inplace` is accepted and computes out of place."""
    return HardswishFunction.apply(check_float(input, "input", "hardswish"))


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x)); `inplace` is accepted and computes out of place."""
    return MishFunction.apply(check_float(input, "input", "mish"))


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x where positive, weight * x elsewhere; `weight` has 1 element or one per channel (dim 1)."""
    check_float(input, "input", "prelu")
    check_float(weight, "weight", "prelu")
    channels = input.shape[1] if input.ndim >= 2 else 1
    if weight.ndim != 1 or weight.shape[0] not in (1, channels):
        raise ValueError(f"prelu: `weight` must be 1-D with 1 or {channels} (the channels of `input`) elements, got "
                         f"shape {tuple(weight.shape)}")
    return PReLUFunction.apply(input, weight)
