"""Depthwise convolution (groups == in_channels) as a shifted multiply-add over the kernel offsets (private).

A depthwise filter reads one input channel, so im2col + GEMM degenerates into G tiny GEMMs with one column
each. Instead, channels-last, every kernel offset (i, j) is one broadcast multiply-add of a shifted view
of the whole padded chunk:

    y[n, oy, ox, c, r] = sum_{i, j} xp[n, oy*sh + i*dh, ox*sw + j*dw, c] * w[c*m + r, 0, i, j]

with m = out_channels / in_channels (the depth multiplier). Both gradients are the same loop run backwards.
"""

from __future__ import annotations

import numpy as np

from convolve._threads import run_chunks
from convolve.nn.functional._im2col import Pads, Pair, batch_chunks, out_size, pad_into


def is_depthwise(x_channels: int, weight_shape: tuple[int, ...], groups: int) -> bool:
    """Whether a conv2d is depthwise: one input channel per group, groups == channels > 1."""
    return groups == x_channels > 1 and weight_shape[1] == 1


def _taps(xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, oh_ow: Pair):
    """(i, j, view) for each kernel offset: the (n, oh, ow, C) slice of `xp` that offset reads."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, oh_ow
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]


class _Space:
    """Per-thread buffers: zero-bordered padded chunk, a product buffer, a weight-gradient accumulator."""

    def __init__(self, xp_shape: tuple[int, ...], prod_shape: tuple[int, ...], w_taps: tuple[int, ...],
                 dtype: np.dtype) -> None:
        self.xp = np.zeros(xp_shape, dtype=dtype)  # padded input chunk; its borders stay zero
        self.dxp = np.empty(xp_shape, dtype=dtype)  # padded input-gradient chunk (backward)
        self.prod = np.empty(prod_shape, dtype=dtype)
        self.y = np.empty(prod_shape, dtype=dtype)  # output chunk (n, oh, ow, C, m), copied into place
        self.acc = np.zeros(w_taps, dtype=dtype)


def _setup(shape: tuple[int, ...], weight: np.ndarray, stride: Pair, dilation: Pair, pads: Pads):
    """Weights as (kh, kw, C, m), output size, chunks and a workspace factory for an NHWC `shape` input."""
    n, h, w, c = shape
    k, _, kh, kw = weight.shape
    w_taps = weight.reshape(c, k // c, kh, kw).transpose(2, 3, 0, 1)  # (kh, kw, C, m)
    padded = (h + sum(pads[0]), w + sum(pads[1]))
    oh, ow = out_size(padded, (kh, kw), stride, dilation)
    chunks = batch_chunks(n, (oh * ow * k + padded[0] * padded[1] * c) * weight.itemsize)
    step = chunks[0].stop - chunks[0].start

    def make() -> _Space:
        return _Space((step, *padded, c), (step, oh, ow, c, k // c), w_taps.shape, weight.dtype)

    return w_taps, (oh, ow), chunks, make


def depthwise_forward(src: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, dilation: Pair,
                      pads: Pads, out: np.ndarray) -> None:
    """out (N, oh, ow, K) = depthwise correlation of the NHWC view `src` with weight (K, 1, kh, kw)."""
    w_taps, oh_ow, chunks, make = _setup(src.shape, weight, stride, dilation, pads)
    c, m = w_taps.shape[2:]

    def task(chunk: slice, ws: _Space) -> None:
        n = chunk.stop - chunk.start
        xp = pad_into(ws.xp[:n], src[chunk], pads)
        y = ws.y[:n]  # (n, oh, ow, C, m)
        y.fill(0)
        prod = ws.prod[:n]
        for i, j, view in _taps(xp, weight.shape[2:], stride, dilation, oh_ow):
            np.multiply(view[..., None], w_taps[i, j], out=prod)
            y += prod
        if bias is not None:
            y += bias.reshape(c, m)
        out[chunk] = y.reshape(n, *oh_ow, c * m)  # `out` may be the NHWC view of an NCHW array

    run_chunks(task, chunks, make)


def depthwise_backward(src: np.ndarray, grad: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair,
                       pads: Pads, dx: np.ndarray | None, need_w: bool) -> np.ndarray | None:
    """Fill dx (N, H, W, C) if given; return dW (K, 1, kh, kw) if `need_w`. `grad` is the NHWC view of dY."""
    w_taps, oh_ow, chunks, make = _setup(src.shape, weight, stride, dilation, pads)
    c, m = w_taps.shape[2:]
    kernel = weight.shape[2:]
    (top, _), (left, _) = pads
    h, w = src.shape[1:3]

    def task(chunk: slice, ws: _Space) -> None:
        n = chunk.stop - chunk.start
        g = grad[chunk].reshape(n, *oh_ow, c, m)  # (n, oh, ow, C, m)
        prod = ws.prod[:n]
        if need_w:
            xp = pad_into(ws.xp[:n], src[chunk], pads)
            for i, j, view in _taps(xp, kernel, stride, dilation, oh_ow):
                np.multiply(view[..., None], g, out=prod)
                ws.acc[i, j] += prod.reshape(-1, c * m).sum(axis=0).reshape(c, m)
        if dx is not None:
            dxp = ws.dxp[:n]
            dxp.fill(0)
            for i, j, view in _taps(dxp, kernel, stride, dilation, oh_ow):
                np.multiply(g, w_taps[i, j], out=prod)
                view += prod[..., 0] if m == 1 else prod.sum(axis=-1)
            dx[chunk] = dxp[:, top:top + h, left:left + w]

    spaces = run_chunks(task, chunks, make)
    if not need_w:
        return None
    acc = sum(s.acc for s in spaces[1:]) + spaces[0].acc  # (kh, kw, C, m)
    return np.ascontiguousarray(acc.transpose(2, 3, 0, 1)).reshape(weight.shape)
