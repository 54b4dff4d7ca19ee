"""Normalization: batch_norm, layer_norm, local_response_norm, each with its closed-form backward.

For y = w * x_hat + b with x_hat = (x - mean) / sqrt(var + eps) over a set of m elements, the input gradient
collapses to one line (no m x m Jacobian):

    dx = (w / sqrt(var + eps)) * (dy - mean(dy) - x_hat * mean(dy * x_hat))

and dw = sum(dy * x_hat), db = sum(dy) over the same elements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from convolve._threads import run_chunks
from convolve._validate import check_float, check_not_empty
from convolve.autograd import Context, Function
from convolve.tensor import Tensor

__all__ = ["batch_norm", "layer_norm", "local_response_norm"]


def _normalized_grad(gxh: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """dL/dx given dL/dx_hat when mean and variance were taken over `axes` (the formula above, w folded in)."""
    mean_g = gxh.mean(axis=axes, keepdims=True)
    mean_gx = (gxh * x_hat).mean(axis=axes, keepdims=True)
    return inv_std * (gxh - mean_g - x_hat * mean_gx)


# ----- batch norm -------------------------------------------------------------------------------------------
# Every pass works on (N, C, L) arrays, in chunks of samples of ~_CHUNK_BYTES (`_threads.run_chunks`: over the
# threads the convolutions use), so the passes of one phase reuse the chunk from L2 (measured at 128x16x32x32:
# backward 3.8 -> 3.1 ms on 1 thread, 2.2 ms on 2). A per-channel operand is a (1, C, 1) broadcast or, when C*L
# values fit in L2, a (1, C, L) repeated row: NumPy then runs one inner loop of C*L instead of one per (n, c)
# (1.5-2x faster per pass at 128x16x32x32; slower once the row spills out of L2, at 64x112x112).
_ROW_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 19


def _by_channel(a: np.ndarray) -> np.ndarray:
    """(N, C, L) view of an (N, C, *) array (a copy if it is not contiguous): reductions run along rows of L."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def _operand(v: np.ndarray, length: int) -> np.ndarray:
    """Per-channel values v (C,) shaped to broadcast against (N, C, L = length)."""
    if v.size * length * v.itemsize <= _ROW_BYTES:
        return np.repeat(v, length).reshape(1, v.size, length)  # (1, C, L)
    return v.reshape(1, v.size, 1)


def _run(task: Callable[[slice], None], a: np.ndarray) -> None:
    """task(samples) over chunks of the batch of the (N, C, L) array `a`, on the convolutions' threads."""
    step = max(1, _CHUNK_BYTES // max(1, a[0].nbytes))
    chunks = [slice(i, min(i + step, len(a))) for i in range(0, len(a), step)]
    run_chunks(lambda chunk, _: task(chunk), chunks, lambda: None)


def _total(partial: np.ndarray) -> np.ndarray:
    """(N, C) per-sample partial sums -> (C,), added in float64 (PyTorch accumulates batch statistics in double)."""
    return partial.sum(axis=0, dtype=np.float64).astype(partial.dtype, copy=False)


def _batch_stats_normalize(x3: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                           eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(out, mean, var, inv_std) of training mode: 3 phases (sum; centre and square-sum; scale and shift)."""
    n, c, length = x3.shape
    m = x3.dtype.type(n * length)  # values per channel
    out = np.empty(x3.shape, x3.dtype)  # (N, C, L): the centred values, then the output, in place
    sums, squares = np.empty((n, c), x3.dtype), np.empty((n, c), x3.dtype)  # per-sample partials

    def sum_rows(s: slice) -> None:
        np.einsum("ncl->nc", x3[s], out=sums[s])

    _run(sum_rows, x3)
    mean = _total(sums) / m  # (C,)
    centre = _operand(mean, length)

    def centre_and_square(s: slice) -> None:
        np.subtract(x3[s], centre, out=out[s])
        np.einsum("ncl,ncl->nc", out[s], out[s], out=squares[s])

    _run(centre_and_square, x3)
    var = _total(squares) / m  # (C,) biased: the normalizer
    inv_std = (1 / np.sqrt(var + x3.dtype.type(eps))).astype(x3.dtype, copy=False)  # (C,)
    scale = _operand(inv_std if weight is None else weight * inv_std, length)
    shift = None if bias is None else _operand(bias, length)

    def scale_and_shift(s: slice) -> None:
        out[s] *= scale
        if shift is not None:
            out[s] += shift

    _run(scale_and_shift, x3)
    return out, mean, var, inv_std


def _batch_stats_backward(x3: np.ndarray, g3: np.ndarray, mean: np.ndarray, inv_std: np.ndarray,
                          scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gx, sum(dy), sum(dy * (x - mean))) with batch statistics, in 2 phases (reductions; gx in place):
    dx = scale * (dy - mean(dy) - x_hat * mean(dy * x_hat)), x_hat = (x - mean) * inv_std."""
    n, c, length = x3.shape
    m = x3.dtype.type(n * length)
    gx = np.empty(x3.shape, x3.dtype)  # (N, C, L): x - mean, then the gradient, in place
    sums, dots = np.empty((n, c), x3.dtype), np.empty((n, c), x3.dtype)  # per-sample partials
    centre = _operand(mean, length)

    def reduce(s: slice) -> None:
        np.einsum("ncl->nc", g3[s], out=sums[s])
        np.subtract(x3[s], centre, out=gx[s])
        np.einsum("ncl,ncl->nc", g3[s], gx[s], out=dots[s])

    _run(reduce, x3)
    sum_dy, dot = _total(sums), _total(dots)  # (C,) each, shared by gb, gw and gx
    k, shift = _operand(-(inv_std * inv_std) * dot / m, length), _operand(-sum_dy / m, length)
    factor = _operand(scale, length)

    def combine(s: slice) -> None:
        gx[s] *= k
        gx[s] += shift
        gx[s] += g3[s]
        gx[s] *= factor

    _run(combine, x3)
    return gx, sum_dy, dot


class BatchNormFunction(Function):
    """Per-channel normalization with the batch's statistics (`training`; running ones updated in place) or the
    running ones. Saves x (the graph keeps it alive anyway), not x_hat."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                running_mean: np.ndarray | None, running_var: np.ndarray | None, training: bool, momentum: float,
                eps: float) -> np.ndarray:
        x3 = _by_channel(x)  # (N, C, L)
        n, _, length = x3.shape
        if training:
            out, mean, var, inv_std = _batch_stats_normalize(x3, weight, bias, eps)
            _update_running_stats(running_mean, running_var, mean, var, momentum, n * length)
        else:  # as PyTorch's inference kernel: y = x * scale + shift, 2 passes
            mean = running_mean.astype(x.dtype)  # type: ignore[union-attr]  # a copy: later updates don't leak in
            var = running_var.astype(x.dtype)  # type: ignore[union-attr]
            inv_std = (1 / np.sqrt(var + x.dtype.type(eps))).astype(x.dtype, copy=False)  # (C,)
            scale = inv_std if weight is None else weight * inv_std
            out = x3 * _operand(scale, length)
            out += _operand(-mean * scale if bias is None else bias - mean * scale, length)
        ctx.save_for_backward(x, weight)
        ctx.mean, ctx.inv_std, ctx.training = mean, inv_std, training
        ctx.scale = inv_std if weight is None else weight * inv_std  # (C,): y = scale * (x - mean) + bias
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, _ = ctx.saved  # weight was saved so that an in-place write to it before backward is caught
        mean, inv_std, scale = ctx.mean, ctx.inv_std, ctx.scale
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        x3, g3 = _by_channel(x), _by_channel(grad)  # (N, C, L)
        length = x3.shape[2]
        gx: np.ndarray | None = None
        sum_dy: np.ndarray | None = None
        dot: np.ndarray | None = None
        if need_x and ctx.training:  # batch statistics depend on x
            gx, sum_dy, dot = _batch_stats_backward(x3, g3, mean, inv_std, scale)
        else:  # running statistics are constants (eval mode, frozen statistics: not the hot path)
            gx = g3 * _operand(scale, length) if need_x else None
            sum_dy = _total(np.einsum("ncl->nc", g3)) if need_b else None
            dot = _total(np.einsum("ncl,ncl->nc", g3, x3 - _operand(mean, length))) if need_w else None
        gw = None if dot is None or not need_w else dot * inv_std
        return None if gx is None else gx.reshape(x.shape), gw, sum_dy if need_b else None


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
    return BatchNormFunction.apply(input, weight, bias,
                                   running_mean=None if running_mean is None else running_mean.data,
                                   running_var=None if running_var is None else running_var.data, training=training,
                                   momentum=momentum, eps=eps)


def _update_running_stats(running_mean: np.ndarray | None, running_var: np.ndarray | None, mean: np.ndarray,
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
