"""Fully connected layer as one GEMM: y = x W^T + b over any number of leading dimensions."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve._validate import check_float
from convolve.autograd import Context, Function
from convolve.engines.policy import policy
from convolve.tensor import Tensor

__all__ = ["linear"]


class LinearFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        out_features, in_features = weight.shape
        x2 = x.reshape(-1, in_features)  # (M, in) with M = prod(leading dims)
        out = x2 @ weight.T  # (M, out)
        if bias is not None:
            out += bias
        ctx.save_for_backward(x2, weight)
        ctx.x_shape = x.shape
        return out.reshape(*x.shape[:-1], out_features)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x2, weight = ctx.saved
        g2 = grad.reshape(-1, weight.shape[0])  # (M, out)
        gx = (g2 @ weight).reshape(ctx.x_shape) if ctx.needs_input_grad[0] else None  # (M, in)
        gw = g2.T @ x2 if ctx.needs_input_grad[1] else None  # (out, in)
        gb = g2.sum(axis=0) if ctx.needs_input_grad[2] else None  # (out,)
        return gx, gw, gb


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias for `input` (*, in_features), `weight` (out_features, in_features), `bias` (out,)."""
    fn = "linear"
    check_float(input, "input", fn)
    check_float(weight, "weight", fn)
    if weight.ndim != 2:
        raise ValueError(f"{fn}: `weight` must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    out_features, in_features = weight.shape
    if input.ndim == 0 or input.shape[-1] != in_features:
        raise ValueError(
            f"{fn}: the last dimension of `input` (shape {tuple(input.shape)}) must equal in_features = {in_features}"
            f" of `weight` (shape {tuple(weight.shape)})"
        )
    if input.dtype != weight.dtype:
        raise TypeError(f"{fn}: `input` dtype {input.dtype} must equal `weight` dtype {weight.dtype}")
    if bias is not None:
        check_float(bias, "bias", fn)
        if bias.shape != (out_features,):
            raise ValueError(f"{fn}: `bias` must have shape ({out_features},), got {tuple(bias.shape)}")
        if bias.dtype != weight.dtype:
            raise TypeError(f"{fn}: `bias` dtype {bias.dtype} must equal `weight` dtype {weight.dtype}")
    return policy.apply(LinearFunction, input, weight, bias)  # the active engine may take the call
