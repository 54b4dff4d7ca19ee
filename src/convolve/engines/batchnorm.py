"""The chunked batch-norm engine: each phase runs over batch chunks of ~512 KB on the convolutions' threads.

Same formulas as the reference in `nn/functional/norm.py`, arranged for the cache: the forward pass is three
phases (sum; centre and square-sum; scale and shift) and the backward pass two (the reductions; the gradient
in place), each over chunks of samples so that a phase reuses its chunk from L2 (benchmarks/RESULTS.md "BN").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convolve.autograd import Context
from convolve.engines.kernel import Kernel
from convolve.engines.workspace import run_chunks
from convolve.nn.functional.norm import BatchNormFunction, update_running_stats

__all__ = ["ChunkedBatchNorm"]

# Every pass works on (N, C, L) arrays, in chunks of samples of ~_CHUNK_BYTES (`workspace.run_chunks`: over the
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


def _average(partial: np.ndarray, count: int, dtype: np.dtype) -> np.ndarray:
    """(N, C) per-sample partial sums -> (C,) means in `dtype`, added and divided in float64 and rounded once.

    The mean is subtracted from values that may be far larger than their spread, so it must be correctly rounded:
    per-sample sums in float32 and a float32 total (ulp 0.001 at 14,400) put the mean of a batch of values near 50
    off by up to 3e-6, and the weight gradient sum(dy * (x - mean)) carried that times sum(dy): up to 5.8x
    PyTorch's tolerance in 2 of 300 random batches of 8x3x6x6 with a random dy (now 0.14x at worst, the
    reference's 0.18x); under the tests' oracle (forward and gradients) 11 of 400 batches failed, now none.
    """
    return (partial.sum(axis=0, dtype=np.float64) / count).astype(dtype, copy=False)


def _batch_stats_normalize(x3: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                           eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(out, mean, var, inv_std) of training mode: 3 phases (sum; centre and square-sum; scale and shift)."""
    n, c, length = x3.shape
    out = np.empty(x3.shape, x3.dtype)  # (N, C, L): the centred values, then the output, in place
    sums, squares = np.empty((n, c)), np.empty((n, c), x3.dtype)  # per-sample partials (sums: float64)

    def sum_rows(s: slice) -> None:
        np.einsum("ncl->nc", x3[s], out=sums[s], dtype=np.float64)

    _run(sum_rows, x3)
    mean = _average(sums, n * length, x3.dtype)  # (C,)
    centre = _operand(mean, length)

    def centre_and_square(s: slice) -> None:
        np.subtract(x3[s], centre, out=out[s])
        np.einsum("ncl,ncl->nc", out[s], out[s], out=squares[s])

    _run(centre_and_square, x3)
    var = _average(squares, n * length, x3.dtype)  # (C,) biased: the normalizer
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


class ChunkedBatchNorm(Kernel, BatchNormFunction):
    """batch_norm in three chunked passes forward and two backward (every call; the "fast" engine's BN).

    Saves x (the graph keeps it alive anyway), not x_hat."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                running_mean: np.ndarray | None, running_var: np.ndarray | None, training: bool, momentum: float,
                eps: float) -> np.ndarray:
        x3 = _by_channel(x)  # (N, C, L)
        n, _, length = x3.shape
        if training:
            out, mean, var, inv_std = _batch_stats_normalize(x3, weight, bias, eps)
            update_running_stats(running_mean, running_var, mean, var, momentum, n * length)
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
