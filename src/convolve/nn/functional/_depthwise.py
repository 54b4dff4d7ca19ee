"""Depthwise convolution (groups == in_channels) as a shifted multiply-add over the kernel offsets (private).

A depthwise filter reads one input channel, so im2col + GEMM degenerates into G tiny GEMMs with one column
each. Instead, in NCHW, every kernel offset (i, j) is one broadcast multiply-add of a shifted view of the
whole padded chunk (runs of `ow` contiguous pixels, no layout conversion):

    y[n, k, oy, ox] = sum_{i, j} xp[n, k // m, oy*sh + i*dh, ox*sw + j*dw] * w[k, 0, i, j]

with m = out_channels / in_channels (the depth multiplier; m > 1 repeats each input channel m times first).
Both gradients are the same loop run backwards: dW[k, i, j] sums tap * dY, dX adds dY * w[k, i, j] back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from convolve._threads import run_chunks
from convolve.nn.functional._im2col import Pads, Pair, batch_chunks, out_size


def is_depthwise(x_channels: int, weight_shape: tuple[int, ...], groups: int) -> bool:
    """Whether a conv2d is depthwise: one input channel per group, groups == channels > 1."""
    return groups == x_channels > 1 and weight_shape[1] == 1


def _taps(xp: np.ndarray, kernel: tuple[int, ...], stride: Pair, dilation: Pair,
          oh_ow: Pair) -> Iterator[tuple[int, int, np.ndarray]]:
    """(i, j, view) for each kernel offset: the (n, K, oh, ow) slice of the padded chunk that offset reads."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, oh_ow
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]


class _Space:
    """Per-thread buffers: zero-bordered padded chunk, input-gradient chunk, product, dW accumulator."""

    def __init__(self, xp_shape: tuple[int, ...], y_shape: tuple[int, ...], taps: tuple[int, ...],
                 dtype: np.dtype) -> None:
        self.xp = np.zeros(xp_shape, dtype=dtype)  # (n, K, Hp, Wp); its borders stay zero
        self.dxp = np.empty(xp_shape, dtype=dtype)
        self.prod = np.empty(y_shape, dtype=dtype)  # (n, K, oh, ow)
        self.acc = np.zeros(taps, dtype=dtype)  # (K, kh, kw)


def _setup(x: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair,
           pads: Pads) -> tuple[np.ndarray, Pair, list[slice], Callable[[], _Space]]:
    """Input with channels repeated to K, output size, chunks and a workspace factory."""
    n, c, h, w = x.shape
    k, _, kh, kw = weight.shape
    x_rep = x if k == c else np.repeat(x, k // c, axis=1)  # (N, K, H, W): channel k reads input k // m
    padded = (h + sum(pads[0]), w + sum(pads[1]))
    oh, ow = out_size(padded, (kh, kw), stride, dilation)
    chunks = batch_chunks(n, 2 * (oh * ow + padded[0] * padded[1]) * k * weight.itemsize)
    step = chunks[0].stop - chunks[0].start

    def make() -> _Space:
        return _Space((step, k, *padded), (step, k, oh, ow), (k, kh, kw), weight.dtype)

    return x_rep, (oh, ow), chunks, make


def _pad(ws: _Space, x: np.ndarray, pads: Pads) -> np.ndarray:
    """Copy the (n, K, H, W) chunk into the zero-bordered buffer."""
    (top, _), (left, _) = pads
    xp = ws.xp[: x.shape[0]]
    xp[:, :, top:top + x.shape[2], left:left + x.shape[3]] = x
    return xp


def depthwise_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, dilation: Pair,
                      pads: Pads, out: np.ndarray) -> None:
    """out (N, K, oh, ow) = depthwise correlation of NCHW x with weight (K, 1, kh, kw), plus bias."""
    x_rep, oh_ow, chunks, make = _setup(x, weight, stride, dilation, pads)
    w_taps = weight[:, 0, :, :, None, None]  # (K, kh, kw, 1, 1): broadcast over (oh, ow)

    def task(chunk: slice, ws: _Space) -> None:
        xp = _pad(ws, x_rep[chunk], pads)
        y, prod = out[chunk], ws.prod[: xp.shape[0]]  # (n, K, oh, ow)
        for i, j, view in _taps(xp, weight.shape[2:], stride, dilation, oh_ow):
            if i == j == 0:
                np.multiply(view, w_taps[:, 0, 0], out=y)
            else:
                np.multiply(view, w_taps[:, i, j], out=prod)
                y += prod
        if bias is not None:
            y += bias[:, None, None]

    run_chunks(task, chunks, make)


def depthwise_backward(x: np.ndarray, grad: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair,
                       pads: Pads, dx: np.ndarray | None, need_w: bool) -> np.ndarray | None:
    """Fill dx (N, C, H, W) if given; return dW (K, 1, kh, kw) if `need_w`."""
    x_rep, oh_ow, chunks, make = _setup(x, weight, stride, dilation, pads)
    k, c, h, w = weight.shape[0], x.shape[1], x.shape[2], x.shape[3]
    w_taps = weight[:, 0, :, :, None, None]
    (top, _), (left, _) = pads

    def task(chunk: slice, ws: _Space) -> None:
        g = np.ascontiguousarray(grad[chunk])  # (n, K, oh, ow)
        n = g.shape[0]
        prod = ws.prod[:n]
        if need_w:
            xp = _pad(ws, x_rep[chunk], pads)
            for i, j, view in _taps(xp, weight.shape[2:], stride, dilation, oh_ow):
                ws.acc[:, i, j] += np.einsum("nkyx,nkyx->k", view, g)  # one pass, no temporary (2x mul+sum)
        if dx is not None:
            dxp = ws.dxp[:n]
            dxp.fill(0)
            for i, j, view in _taps(dxp, weight.shape[2:], stride, dilation, oh_ow):
                np.multiply(g, w_taps[:, i, j], out=prod)
                view += prod
            crop = dxp[:, :, top:top + h, left:left + w]  # (n, K, H, W)
            dx[chunk] = crop if k == c else crop.reshape(n, c, k // c, h, w).sum(axis=2)

    spaces = run_chunks(task, chunks, make)
    if not need_w:
        return None
    return sum((s.acc for s in spaces[1:]), spaces[0].acc).reshape(weight.shape)
