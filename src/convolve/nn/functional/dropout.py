"""Inverted dropout: zero each element (or whole channel) with probability p, scale survivors by 1/(1-p).

`p` is the DROP probability, as in PyTorch; some course frameworks (and the original Hinton et al. paper)
use the KEEP probability instead: their keep_prob = 1 - p here. At evaluation time (`training=False`)
dropout is the identity, since the 1/(1-p) scaling already happened during training.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve._validate import check_float, check_probability
from convolve.autograd import Context, Function, is_grad_enabled
from convolve.random import Generator, rng
from convolve.tensor import Tensor

__all__ = ["dropout", "dropout1d", "dropout2d"]


class DropoutFunction(Function):
    """Multiply by a mask of 0 and 1/(1-p); `mask_shape` broadcasts to the input (channel dropout)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, p: float, mask_shape: tuple[int, ...], generator: Generator | None,
                inplace: bool = False) -> np.ndarray:
        if p == 1.0:
            mask = np.zeros(mask_shape, dtype=x.dtype)
        else:
            draw_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32  # NumPy draws no float16
            keep = rng(generator).random(mask_shape, dtype=draw_dtype) >= p  # P(keep) = 1 - p
            mask = keep * x.dtype.type(1.0 / (1.0 - p))
        ctx.save_for_backward(mask)
        return np.multiply(x, mask, out=x if inplace else None)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (mask,) = ctx.saved  # the very mask of the forward pass
        return (grad * mask,)


def _dropout(input: Tensor, p: float, training: bool, inplace: bool, generator: Generator | None,
             mask_shape: tuple[int, ...], fn: str) -> Tensor:
    check_float(input, "input", fn)
    check_probability(p, "p", fn)
    if inplace and input.requires_grad and input.is_leaf and is_grad_enabled():
        raise RuntimeError(f"{fn}: `inplace=True` on a leaf tensor that requires grad is not allowed")
    if not training or p == 0.0:
        return input
    return DropoutFunction.apply(input, p=float(p), mask_shape=mask_shape, generator=generator, inplace=inplace)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
            generator: Generator | None = None) -> Tensor:
    """Zero each element with probability `p` (drop probability) and scale the rest by 1/(1-p).

    Identity when `training=False` or p = 0; all zeros when p = 1. Randomness comes from `generator`, or the
    global generator seeded by `convolve.manual_seed`.
    """
    return _dropout(input, p, training, inplace, generator, tuple(input.shape), "dropout")


def _channel_mask_shape(input: Tensor, spatial: int, fn: str) -> tuple[int, ...]:
    """(N, C, 1, ...) for a batched input, (C, 1, ...) for an unbatched one."""
    allowed = (spatial + 1, spatial + 2)
    if not isinstance(input, Tensor) or input.ndim not in allowed:
        got = f"{input.ndim}-D with shape {tuple(input.shape)}" if isinstance(input, Tensor) else type(input).__name__
        layout = "(N, C, H, W) or (C, H, W)" if spatial == 2 else "(N, C, L) or (C, L)"
        raise ValueError(f"{fn}: `input` must be {allowed[1]}-D or {allowed[0]}-D {layout}, got {got}")
    return tuple(input.shape[: input.ndim - spatial]) + (1,) * spatial


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              generator: Generator | None = None) -> Tensor:
    """Zero whole channels of (N, C, L) or (C, L) with probability `p`; scale the rest by 1/(1-p)."""
    return _dropout(input, p, training, inplace, generator, _channel_mask_shape(input, 1, "dropout1d"), "dropout1d")


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              generator: Generator | None = None) -> Tensor:
    """Zero whole channels (feature maps) of (N, C, H, W) or (C, H, W) with probability `p` (spatial dropout).

    Unlike PyTorch, which (for now, with a warning) treats a 3-D input as (N, C, L), a 3-D input here is one
    unbatched image (C, H, W), which is what PyTorch announces as its future behaviour.
    """
    return _dropout(input, p, training, inplace, generator, _channel_mask_shape(input, 2, "dropout2d"), "dropout2d")
