"""The row convolution: a Numba direct convolution on NCHW images, vectorised along the output rows (stride 1).

For layers with very few channels (LeNet-5's C1: 1 -> 6 channels, 5x5) neither GEMM shape fits well: im2col
copies every input value kh*kw times for a product with only K rows, and the channels-last direct kernel fills
only K of its 16 lanes. Here each image's output planes are accumulated in a (K, oh * Wp) buffer that stays in
L1, computed at the padded input width Wp, so that a kernel tap is one long contiguous loop (LLVM vectorises it):

    acc[k, p] += w[k, c, i, j] * xp[c, i * Wp + j + p]        p = oy * Wp + ox, over all oh * Wp positions

The columns ox >= ow of each row are junk (they read the next row's values) and are never stored. The taps of a
kernel row go through the buffer four (then two, one) at a time, still added tap by tap (FMAs, no
reassociation), so an output does not depend on the batch chunking or the thread count.
The input gradient is the same kernel on dY with the flipped, in/out-swapped filters; the weight gradient is the
few-channel NumPy kernel's (per-row dot products here were measured no faster).
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np

from convolve.engines import compiled
from convolve.engines.kernel import NCHWConv2d
from convolve.engines.small_nchw import small_backward
from convolve.engines.workspace import guided_chunks, run_chunks
from convolve.nn.functional.geometry import Pads, Pair

__all__ = ["RowConv2d", "row_backward", "row_forward"]

_lock = threading.Lock()
_jit: SimpleNamespace | None = None


def _taps4(a, xs, w0, w1, w2, w3, n):  # pragma: no cover - compiled
    """a[p] += w0 x[p] + w1 x[p+1] + w2 x[p+2] + w3 x[p+3], added tap by tap (one pass over `a` for 4 taps)."""
    for p in range(n):
        a[p] = a[p] + w0 * xs[p] + w1 * xs[p + 1] + w2 * xs[p + 2] + w3 * xs[p + 3]


def _taps2(a, xs, w0, w1, n):  # pragma: no cover - compiled
    for p in range(n):
        a[p] = a[p] + w0 * xs[p] + w1 * xs[p + 1]


def _taps1(a, xs, w0, n):  # pragma: no cover - compiled
    for p in range(n):
        a[p] += w0 * xs[p]


def _fwd_chunk(x, w, bias, has_bias, top, left, out, xp, acc):  # pragma: no cover - compiled
    """out (n, K, oh, ow) = x (n, C, H, W) correlated with w (K, C, kh, kw) at stride 1 (+ bias), through the
    zero-bordered image buffer xp (C, Hp + 1, Wp) and the plane accumulator acc (K, oh * Wp)."""
    n, C, H, W = x.shape
    K, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    Hp, Wp = xp.shape[1], xp.shape[2]
    u = np.uint64
    flat_x = xp.reshape(C * Hp * Wp)
    plane = u(oh * Wp)  # output rows at the padded width: column ox of row oy is at oy * Wp + ox
    for b in range(n):
        xp[:, top:top + H, left:left + W] = x[b]
        acc[:] = 0
        for k in range(K):
            a = acc[k]
            for c in range(C):
                for i in range(kh):
                    row = flat_x[u((c * Hp + i) * Wp):]
                    j = 0
                    while j + 4 <= kw:  # taps in groups: fewer passes over the accumulator
                        _taps4(a, row[u(j):], w[k, c, i, j], w[k, c, i, j + 1], w[k, c, i, j + 2],
                               w[k, c, i, j + 3], plane)
                        j += 4
                    if j + 2 <= kw:
                        _taps2(a, row[u(j):], w[k, c, i, j], w[k, c, i, j + 1], plane)
                        j += 2
                    if j < kw:
                        _taps1(a, row[u(j):], w[k, c, i, j], plane)
        for k in range(K):  # acc (K, oh, Wp) -> out (K, oh, ow), + bias
            for oy in range(oh):
                for ox in range(ow):
                    v = acc[k, oy * Wp + ox]
                    if has_bias:
                        v += bias[k]
                    out[b, k, oy, ox] = v


def _kernels() -> SimpleNamespace:
    """The compiled chunk functions (imports Numba; compiled on first call per dtype, or loaded from the cache)."""
    global _jit
    if _jit is None:
        with _lock:
            if _jit is None:
                from numba import njit

                flags = {"nogil": True, "cache": True, "fastmath": {"contract"}}  # FMAs; no reassociation
                space = globals()  # module-level functions: Numba can cache them
                for name in ("_taps4", "_taps2", "_taps1"):
                    space[name] = njit(**flags)(space[name])
                _jit = SimpleNamespace(fwd_chunk=njit(**flags)(_fwd_chunk))
    return _jit


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, top_left: Pair, out: np.ndarray) -> None:
    """out (N, K, oh, ow) = correlation of x (N, C, H, W) with weight (K, C, kh, kw), x zero-padded by `top_left`
    before and as much as the windows of `out` need after."""
    jit = _kernels()
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    n, c, h, w_ = x.shape
    k, _, kh, kw = weight.shape
    top, left = top_left
    oh, ow = out.shape[2:]
    hp, wp = max(h + top, oh - 1 + kh), max(w_ + left, ow - 1 + kw)
    b = np.zeros(1, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)

    def task(chunk: slice, ws: SimpleNamespace) -> None:
        jit.fwd_chunk(x[chunk], weight, b, bias is not None, top, left, out[chunk], ws.xp, ws.acc)

    # one spare zero row: the last output row's junk columns read up to kw - 1 values past the image
    run_chunks(task, guided_chunks(n), lambda: SimpleNamespace(  # disjoint outputs: any free thread takes a chunk
        xp=np.zeros((c, hp + 1, wp), x.dtype), acc=np.zeros((k, oh * wp), x.dtype)), first_come=True)


def row_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, dilation: Pair,
                padding: Pads, out: np.ndarray) -> None:
    """Fill the NCHW `out` with conv2d(x, weight) + bias (stride 1, dilation 1, groups 1)."""
    _conv(x, weight, bias, (padding[0][0], padding[1][0]), out)


def row_backward(x: np.ndarray, grad: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair,
                 padding: Pads, dx: np.ndarray | None, need_w: bool) -> np.ndarray | None:
    """Fill dx (N, C, H, W) if given: the forward kernel on dY with the flipped, in/out-swapped filters (stride 1);
    return dW (K, C, kh, kw) if `need_w`, from the few-channel NumPy kernel (per image dY @ cols^T: measured as
    fast as, and steadier than, per-row dot products here)."""
    _, _, kh, kw = weight.shape
    (top, _), (left, _) = padding
    if dx is not None:  # dY padded by (taps - 1 - pad) before: the full correlation, cropped to dx
        flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, K, kh, kw)
        _conv(grad, flipped, None, (kh - 1 - top, kw - 1 - left), dx)
    return small_backward(x, grad, weight, stride, dilation, padding, None, need_w) if need_w else None


class RowConv2d(NCHWConv2d):
    """conv2d as a row-vectorised direct convolution: ungrouped, stride 1, dilation 1, zero padding within the
    kernel."""

    @staticmethod
    def supports(x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair, groups: int) -> bool:
        kernel = tuple(weight.shape[2:])
        return (groups == 1 and dilation == (1, 1) and stride == (1, 1) and len(kernel) == 2
                and x.dtype in (np.float32, np.float64) and weight.dtype == x.dtype
                and all(0 <= lo < kk and 0 <= hi < kk for (lo, hi), kk in zip(padding, kernel))
                and compiled.available())

    @staticmethod
    def prefers(x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair,  # type: ignore[override]
                groups: int) -> bool:
        """Layers with C*K <= 8 over more than MIN_ELEMENTS output values (small jobs keep Numba unloaded).

        Measured on LeNet-5's C1 (1 -> 6, 5x5, 32x32, batch 128, 1 thread, min of 30): forward 1.25-1.78 ms here vs
        2.2-2.9 ms for the few-channel NumPy kernel; the LeNet-5 training step 1-1.3 ms faster at 1 thread.
        """
        n, c, h, w = x.shape
        k = weight.shape[0]
        return c * k <= 8 and compiled.pays_for_values(n * k * h * w, x.dtype)

    fill_forward = staticmethod(row_forward)
    fill_backward = staticmethod(row_backward)
