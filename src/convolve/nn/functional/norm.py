"""Normalization: batch_norm, layer_norm, local_response_norm, each with its closed-form backward.

For y = w * x_hat + b with x_hat = (x - mean) / sqrt(var + eps) over a set of m elements, the input gradient
collapses to one line (no m x m Jacobian):

    dx = (w / sqrt(var + eps)) * (dy - mean(dy) - x_hat * mean(dy * x_hat))

and dw = sum(dy * x_hat), db = sum(dy) over the same elements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convolve._validate import check_float, check_not_empty
from convolve.autograd import Context, Function
from convolve.engines.policy import policy
from convolve.tensor import Tensor

__all__ = ["batch_norm", "layer_norm", "local_response_norm"]


def _normalized_grad(gxh: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """dL/dx given dL/dx_hat when mean and variance were taken over `axes` (the formula above, w folded in)."""
    mean_g = gxh.mean(axis=axes, keepdims=True)
    mean_gx = (gxh * x_hat).mean(axis=axes, keepdims=True)
    return inv_std * (gxh - mean_g - x_hat * mean_gx)


# ----- batch norm -------------------------------------------------------------------------------------------
def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """A (C,) vector shaped (1, C, 1, ...) to broadcast against an (N, C, *) array of `ndim` dims."""
    return v.reshape(1, -1, *([1] * (ndim - 2)))


class BatchNormFunction(Function):
    """Per-channel normalization with the batch's statistics (`training`; running ones updated in place) or the
    running ones: x_hat = (x - mean) / sqrt(var + eps), y = w * x_hat + b. Saves x, not x_hat."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                running_mean: np.ndarray | None, running_var: np.ndarray | None, training: bool, momentum: float,
                eps: float) -> np.ndarray:
        axes = (0, *range(2, x.ndim))  # every axis but the channel axis
        if training:
            # (C,) each, accumulated in float64 as PyTorch does; the biased variance normalizes
            mean = x.mean(axis=axes, dtype=np.float64).astype(x.dtype)
            var = x.var(axis=axes, dtype=np.float64).astype(x.dtype)
            update_running_stats(running_mean, running_var, mean, var, momentum, x.size // x.shape[1])
        else:
            mean = running_mean.astype(x.dtype)  # type: ignore[union-attr]  # a copy: later updates don't leak in
            var = running_var.astype(x.dtype)  # type: ignore[union-attr]
        inv_std = (1 / np.sqrt(var + x.dtype.type(eps))).astype(x.dtype, copy=False)  # (C,)
        y = (x - _per_channel(mean, x.ndim)) * _per_channel(inv_std, x.ndim)  # x_hat (N, C, *)
        if weight is not None:
            y *= _per_channel(weight, x.ndim)
        if bias is not None:
            y += _per_channel(bias, x.ndim)
        ctx.save_for_backward(x, weight)
        ctx.mean, ctx.inv_std, ctx.training = mean, inv_std, training
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, weight = ctx.saved
        axes = (0, *range(2, x.ndim))
        x_hat = (x - _per_channel(ctx.mean, x.ndim)) * _per_channel(ctx.inv_std, x.ndim)  # (N, C, *)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g_hat = grad if weight is None else grad * _per_channel(weight, x.ndim)  # dL/dx_hat
        gx = None
        if need_x and ctx.training:  # the batch statistics depend on x: the one-line formula above
            gx = _normalized_grad(g_hat, x_hat, _per_channel(ctx.inv_std, x.ndim), axes)
        elif need_x:  # running statistics are constants
            gx = g_hat * _per_channel(ctx.inv_std, x.ndim)
        gw = (grad * x_hat).sum(axis=axes) if need_w else None
        gb = grad.sum(axis=axes) if need_b else None
        return gx, gw, gb


def _check_channel_vector(t: Tensor | None, name: str, c: int, fn: str, dtype: np.dtype | None = None) -> None:
    if t is None:
        return
    check_float(t, name, fn)
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{fn}: `{name}` has dtype {t.dtype} but `input` is {dtype}: convert one of them")
    if t.shape != (c,):
        raise ValueError(f"{fn}: `{name}` must have shape ({c},) (one value per channel), got {tuple(t.shape)}")


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalization of (N, C), (N, C, L) or (N, C, H, W) per channel C, as `torch.nn.functional.batch_norm`.

    training=True: normalize with the batch mean and biased variance, and update the running statistics in
    place: running = (1 - momentum) * running + momentum * batch, using the UNBIASED batch variance.
    training=False: normalize with `running_mean` / `running_var` (which are then required).
    """
    fn = "batch_norm"
    check_float(input, "input", fn)
    if input.ndim not in (2, 3, 4, 5):
        raise ValueError(f"{fn}: `input` must be 2-D to 5-D (N, C, *), got {input.ndim}-D with shape {input.shape}")
    check_not_empty(input, "input", fn)
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        _check_channel_vector(t, name, c, fn, input.dtype if name in ("weight", "bias") else None)
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{fn}: `running_mean` and `running_var` are required when training=False")
    m = input.data.size // c  # values per channel
    if training and m == 1:
        raise ValueError(f"{fn}: expected more than 1 value per channel when training, got input shape {input.shape}")
    if not eps > 0:
        raise ValueError(f"{fn}: `eps` must be positive, got {eps}")
    return policy.apply(BatchNormFunction, input, weight, bias,
                        running_mean=None if running_mean is None else running_mean.data,
                        running_var=None if running_var is None else running_var.data, training=training,
                        momentum=momentum, eps=eps)


def update_running_stats(running_mean: np.ndarray | None, running_var: np.ndarray | None, mean: np.ndarray,
                          var: np.ndarray, momentum: float, m: int) -> None:
    """running = (1 - momentum) * running + momentum * batch (variance unbiased by m / (m - 1)), in place."""
    if running_mean is not None:
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean
    if running_var is not None:
        running_var[...] = (1 - momentum) * running_var + momentum * var * (m / (m - 1))


# ----- layer norm -------------------------------------------------------------------------------------------
class LayerNormFunction(Function):
    """Normalize over the last `k` dims of each sample; weight/bias have those `k` dims' shape."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, k: int,
                eps: float) -> np.ndarray:
        axes = tuple(range(x.ndim - k, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=axes, keepdims=True)  # biased
        inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
        x_hat = centred * inv_std
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.axes = axes
        out = x_hat if weight is None else x_hat * weight
        return out if bias is None else out + bias

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x_hat, inv_std, weight = ctx.saved
        lead = tuple(range(grad.ndim - len(ctx.axes)))  # the batch-like dims weight/bias are shared over
        gxh = grad if weight is None else grad * weight
        gx = _normalized_grad(gxh, x_hat, inv_std, ctx.axes) if ctx.needs_input_grad[0] else None
        gw = (grad * x_hat).sum(axis=lead) if ctx.needs_input_grad[1] else None
        gb = grad.sum(axis=lead) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize each sample over its trailing `normalized_shape` dims (biased variance), then scale and shift."""
    fn = "layer_norm"
    check_float(input, "input", fn)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or k > input.ndim or tuple(input.shape[input.ndim - k :]) != shape:
        raise ValueError(
            f"{fn}: `normalized_shape` {shape} must equal the trailing dims of `input` (shape {tuple(input.shape)})"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            check_float(t, name, fn)
            if tuple(t.shape) != shape:
                raise ValueError(f"{fn}: `{name}` must have shape normalized_shape = {shape}, got {tuple(t.shape)}")
    return LayerNormFunction.apply(input, weight, bias, k=k, eps=eps)


# ----- local response norm ------------------------------------------------------------------------------------
def _window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """s[:, c] = sum of a[:, c - before : c + after + 1] along axis 1, zero outside (a loop over window taps)."""
    c = a.shape[1]
    pad = [(0, 0)] * a.ndim
    pad[1] = (before, after)
    padded = np.pad(a, pad)  # (N, before + C + after, ...)
    out = padded[:, 0:c].copy()
    for j in range(1, before + after + 1):
        out += padded[:, j : j + c]
    return out


class LocalResponseNormFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
        before, after = size // 2, (size - 1) // 2  # PyTorch's window: [c - size//2, c + (size-1)//2]
        scale = x.dtype.type(k) + x.dtype.type(alpha / size) * _window_sum(x * x, before, after)
        out = x * scale ** x.dtype.type(-beta)
        ctx.save_for_backward(x, scale, out)
        ctx.params = (size, alpha, beta)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, scale, out = ctx.saved
        size, alpha, beta = ctx.params
        # y_c = x_c s_c^-beta with s_c = k + (alpha/n) sum_{i in W(c)} x_i^2, so
        # dL/dx_i = g_i s_i^-beta - (2 alpha beta / n) x_i sum_{c: i in W(c)} g_c y_c / s_c.
        # i in W(c) <=> c in [i - (size-1)//2, i + size//2]: the adjoint window, mirrored.
        t = grad * out / scale
        adj = _window_sum(t, (size - 1) // 2, size // 2)
        factor = x.dtype.type(2 * alpha * beta / size)
        return (grad * scale ** x.dtype.type(-beta) - factor * x * adj,)


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """Divide each activation by (k + alpha/size * sum of squares over `size` neighbouring channels)^beta.

    PyTorch's (and Caffe's) convention: `alpha` is divided by `size`, k defaults to 1, and the window
    [c - size//2, c + (size-1)//2] is zero-padded at the channel ends. The AlexNet paper (and Chainer) use
    alpha as is with k=2 (n=5, alpha=1e-4, beta=0.75): to reproduce the paper, call
    local_response_norm(x, size=5, alpha=5 * 1e-4, beta=0.75, k=2.0), i.e. alpha_here = size * alpha_paper.
    """
    fn = "local_response_norm"
    check_float(input, "input", fn)
    if input.ndim < 3:
        raise ValueError(f"{fn}: `input` must be at least 3-D (N, C, *), got {input.ndim}-D with shape {input.shape}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"{fn}: `size` must be a positive int, got {size!r}")
    return LocalResponseNormFunction.apply(input, size=int(size), alpha=alpha, beta=beta, k=k)
