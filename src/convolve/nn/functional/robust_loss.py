"""l1_loss, smooth_l1_loss and huber_loss: elementwise losses of d = input - target, reduced as the other losses.

    l1:         |d|                                           d/dd: sign(d)
    smooth_l1:  d^2 / (2 beta)  if |d| < beta, else |d| - beta/2    d/dd: d / beta, else sign(d)
    huber:      d^2 / 2         if |d| < delta, else delta (|d| - delta/2)   d/dd: d, else delta sign(d)

(huber = delta * smooth_l1 with beta = delta.) The gradient of |d| at d = 0 is 0, as in PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.autograd import Context, Function
from convolve.nn.functional.loss import _check_pair, _check_reduction, _reduce, _upstream
from convolve.tensor import Tensor

__all__ = ["huber_loss", "l1_loss", "smooth_l1_loss"]


def _elementwise(d: np.ndarray, kind: str, width: float) -> tuple[np.ndarray, np.ndarray]:
    """(loss, d loss / d d) of every element."""
    a = np.abs(d)
    if kind == "l1" or width == 0:
        return a, np.sign(d)
    inside = a < width
    if kind == "smooth_l1":
        return np.where(inside, 0.5 * d * d / width, a - 0.5 * width), np.where(inside, d / width, np.sign(d))
    return np.where(inside, 0.5 * d * d, width * (a - 0.5 * width)), np.where(inside, d, width * np.sign(d))


class RobustLossFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, t: np.ndarray, kind: str, width: float, reduction: str) -> np.ndarray:
        loss, slope = _elementwise(x - t, kind, width)
        ctx.save_for_backward(slope.astype(x.dtype, copy=False))
        ctx.reduction = reduction
        return _reduce(loss.astype(x.dtype, copy=False), reduction, loss.size)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (slope,) = ctx.saved
        gx = slope * _upstream(grad, ctx.reduction, slope.size, slope.size).reshape(slope.shape)
        return gx, -gx


def _robust(fn: str, input: Tensor, target: Tensor, kind: str, width: float, reduction: str) -> Tensor:
    _check_pair(input, target, fn)
    _check_reduction(reduction, fn)
    if width < 0:
        name = "delta" if kind == "huber" else "beta"
        raise ValueError(f"{fn}: `{name}` must be non-negative, got {width}")
    return RobustLossFunction.apply(input, target, kind=kind, width=float(width), reduction=reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """|input - target|, reduced (mean absolute error)."""
    return _robust("l1_loss", input, target, "l1", 0.0, reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Quadratic below `beta`, linear above (Fast R-CNN's smooth L1)."""
    return _robust("smooth_l1_loss", input, target, "smooth_l1", beta, reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Quadratic below `delta`, linear above with slope `delta`."""
    return _robust("huber_loss", input, target, "huber", delta, reduction)
