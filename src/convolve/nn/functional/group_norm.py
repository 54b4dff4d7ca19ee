"""group_norm: normalize each sample over groups of channels (and all spatial positions), then scale and shift
per channel, as `torch.nn.functional.group_norm`.

With x viewed as (N, G, M) (M = C/G * spatial) and x_hat = (x - mean) / sqrt(var + eps) per (n, g), the input
gradient is the same one-liner as batch/layer norm, over the M elements of a group:

    dx = (1 / sqrt(var + eps)) * (g - mean(g) - x_hat * mean(g * x_hat)),   g = dy * weight[c]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve._validate import check_float
from convolve.autograd import Context, Function
from convolve.tensor import Tensor

__all__ = ["group_norm"]


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """(C,) -> (C, 1, ..., 1) so it broadcasts against (N, C, *spatial)."""
    return v.reshape(v.shape + (1,) * (ndim - 2))


class GroupNorm(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, groups: int,
                eps: float) -> np.ndarray:
        n = x.shape[0]
        xg = x.reshape(n, groups, -1)  # (N, G, C/G * spatial)
        mean = xg.mean(axis=2, keepdims=True)
        centred = xg - mean
        var = (centred * centred).mean(axis=2, keepdims=True)  # biased, as PyTorch
        inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
        x_hat = (centred * inv_std).reshape(x.shape)
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.groups = groups
        out = x_hat if weight is None else x_hat * _per_channel(weight, x.ndim)
        return out if bias is None else out + _per_channel(bias, x.ndim)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x_hat, inv_std, weight = ctx.saved
        n, groups = grad.shape[0], ctx.groups
        reduce = (0, *range(2, grad.ndim))  # every dim but the channel
        gw = (grad * x_hat).sum(axis=reduce) if ctx.needs_input_grad[1] else None
        gb = grad.sum(axis=reduce) if ctx.needs_input_grad[2] else None
        gx = None
        if ctx.needs_input_grad[0]:
            g = (grad if weight is None else grad * _per_channel(weight, grad.ndim)).reshape(n, groups, -1)
            xh = x_hat.reshape(n, groups, -1)
            gx = inv_std * (g - g.mean(axis=2, keepdims=True) - xh * (g * xh).mean(axis=2, keepdims=True))
            gx = gx.reshape(grad.shape)
        return gx, gw, gb


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize (N, C, *) input over groups of C/num_groups channels and all positions of each sample."""
    fn = "group_norm"
    check_float(input, "input", fn)
    if input.ndim < 2:
        raise ValueError(f"{fn}: expected input (N, C, *) with at least 2 dims, got shape {tuple(input.shape)}")
    c = input.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1 or c % num_groups:
        raise ValueError(f"{fn}: the {c} channels of `input` must be divisible by `num_groups` (={num_groups!r})")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            check_float(t, name, fn)
            if tuple(t.shape) != (c,):
                raise ValueError(f"{fn}: `{name}` must have shape ({c},) (one value per channel), got "
                                 f"{tuple(t.shape)}")
    return GroupNorm.apply(input, weight, bias, groups=num_groups, eps=eps)
