"""The depthwise engine: conv2d with groups == in_channels as a shifted multiply-add over the kernel offsets.

A depthwise filter reads one input channel, so im2col + GEMM degenerates into G tiny GEMMs with one column
each. Instead every kernel offset (i, j) is one broadcast multiply-add of a shifted view of the padded chunk:

    y[n, k, oy, ox] = sum_{i, j} xp[n, k // m, oy*s + i*dh, ox*s + j*dw] * w[k, 0, i, j]

with m = out_channels / in_channels (m > 1 repeats each input channel m times first). To give NumPy long inner
loops, each padded image is flattened: output (oy, ox) reads flat index s*(oy*Wp + ox) + i*dh*Wp + j*dw, so a
tap is ONE strided 1-D range of length oh*Wp per (image, channel). The output is computed on that (oh, Wp)
grid and its last Wp - ow columns are cropped (6% extra work at 32x32: 34 columns for 32). Square strides only
(`DepthwiseConv2d.supports`). Both gradients are the same loop run backwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convolve.engines.kernel import NCHWConv2d
from convolve.engines.workspace import batch_chunks, run_chunks, sum_over_chunks
from convolve.nn.functional.geometry import Pads, Pair, padded_output_size

__all__ = ["DepthwiseConv2d", "depthwise_backward", "depthwise_forward"]


class _Geometry:
    """Flat-grid geometry of one depthwise conv: padded size, row width, tap offsets, extended-grid length."""

    def __init__(self, x_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: Pair, dilation: Pair,
                 pads: Pads) -> None:
        _, _, h, w = x_shape
        _, _, kh, kw = weight_shape
        self.hp, self.wp = h + sum(pads[0]), w + sum(pads[1])
        self.oh, self.ow = padded_output_size((self.hp, self.wp), (kh, kw), stride, dilation)
        self.s = stride[0]
        self.length = self.oh * self.wp  # the (oh, Wp) extended output grid, flattened
        self.offsets = [(i, j, i * dilation[0] * self.wp + j * dilation[1]) for i in range(kh) for j in range(kw)]
        last = self.offsets[-1][2] + self.s * (self.length - 1) + 1
        self.flat = max(self.hp * self.wp, last)  # flat buffer length per (image, channel), slack included
        self.top, self.left = pads[0][0], pads[1][0]
        self.h, self.w = h, w

    def taps(self, flat: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """(i, j, view): the (n, K, oh*Wp) strided range of the flat (n, K, flat) buffer that offset reads."""
        for i, j, off in self.offsets:
            yield i, j, flat[:, :, off:off + self.s * (self.length - 1) + 1:self.s]

    def image(self, flat: np.ndarray) -> np.ndarray:
        """The (n, K, Hp, Wp) padded-image view of a flat (n, K, flat) buffer."""
        n_s, k_s, item = flat.strides
        return as_strided(flat, (flat.shape[0], flat.shape[1], self.hp, self.wp), (n_s, k_s, self.wp * item, item))

    def crop(self, ext: np.ndarray) -> np.ndarray:
        """The (n, K, oh, ow) valid part of an (n, K, oh*Wp) extended-grid array."""
        return ext.reshape(ext.shape[0], ext.shape[1], self.oh, self.wp)[:, :, :, :self.ow]


class _Space:
    """Per-thread buffers: flat padded input, flat input gradient, extended output / dY, product."""

    def __init__(self, step: int, k: int, geo: _Geometry, dtype: np.dtype) -> None:
        self.xf = np.zeros((step, k, geo.flat), dtype=dtype)  # borders and slack stay zero
        self.dxf = np.empty((step, k, geo.flat), dtype=dtype)
        self.ext = np.zeros((step, k, geo.length), dtype=dtype)  # dY on the extended grid: zero beyond ow
        self.prod = np.empty((step, k, geo.length), dtype=dtype)


def _setup(x: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair,
           pads: Pads) -> tuple[np.ndarray, _Geometry, list[slice], Callable[[], _Space]]:
    """Input with channels repeated to K, geometry, chunks and a workspace factory."""
    k, c = weight.shape[0], x.shape[1]
    x_rep = x if k == c else np.repeat(x, k // c, axis=1)  # (N, K, H, W): channel k reads input k // m
    geo = _Geometry(x.shape, weight.shape, stride, dilation, pads)
    chunks = batch_chunks(x.shape[0], 2 * (geo.flat + 2 * geo.length) * k * weight.itemsize)
    step = chunks[0].stop - chunks[0].start
    return x_rep, geo, chunks, lambda: _Space(step, k, geo, weight.dtype)


def _load(ws: _Space, geo: _Geometry, x: np.ndarray) -> np.ndarray:
    """Copy the (n, K, H, W) chunk into the zero-bordered flat buffer; return that buffer (n, K, flat)."""
    xf = ws.xf[: x.shape[0]]
    geo.image(xf)[:, :, geo.top:geo.top + geo.h, geo.left:geo.left + geo.w] = x
    return xf


def depthwise_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, dilation: Pair,
                      pads: Pads, out: np.ndarray) -> None:
    """out (N, K, oh, ow) = depthwise correlation of NCHW x with weight (K, 1, kh, kw), plus bias."""
    x_rep, geo, chunks, make = _setup(x, weight, stride, dilation, pads)
    w_taps = weight[:, 0, :, :, None]  # (K, kh, kw, 1): broadcast along the flat grid

    def task(chunk: slice, ws: _Space) -> None:
        xf = _load(ws, geo, x_rep[chunk])
        n = xf.shape[0]
        y, prod = ws.ext[:n], ws.prod[:n]  # (n, K, oh*Wp)
        for i, j, view in geo.taps(xf):
            if i == j == 0:
                np.multiply(view, w_taps[:, 0, 0], out=y)
            else:
                np.multiply(view, w_taps[:, i, j], out=prod)
                y += prod
        if bias is not None:
            y += bias[:, None]
        out[chunk] = geo.crop(y)

    run_chunks(task, chunks, make, first_come=True)  # disjoint outputs: any thread may take a chunk


def depthwise_backward(x: np.ndarray, grad: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair,
                       pads: Pads, dx: np.ndarray | None, need_w: bool) -> np.ndarray | None:
    """Fill dx (N, C, H, W) if given; return dW (K, 1, kh, kw) if `need_w`."""
    x_rep, geo, chunks, make = _setup(x, weight, stride, dilation, pads)
    k, c = weight.shape[0], x.shape[1]
    w_taps = weight[:, 0, :, :, None]

    def task(chunk: slice, acc: np.ndarray | None, ws: _Space) -> None:
        n = chunk.stop - chunk.start
        g = ws.ext[:n]  # (n, K, oh*Wp): dY, zero in the Wp - ow cropped columns
        geo.crop(g)[...] = grad[chunk]
        if acc is not None:  # this chunk's share of dW (K, kh, kw)
            xf = _load(ws, geo, x_rep[chunk])
            for i, j, view in geo.taps(xf):
                acc[:, i, j] += np.einsum("nkl,nkl->k", view, g)  # one pass, no temporary
        if dx is not None:
            dxf, prod = ws.dxf[:n], ws.prod[:n]
            dxf.fill(0)
            for i, j, view in geo.taps(dxf):
                np.multiply(g, w_taps[:, i, j], out=prod)
                view += prod
            crop = geo.image(dxf)[:, :, geo.top:geo.top + geo.h, geo.left:geo.left + geo.w]  # (n, K, H, W)
            dx[chunk] = crop if k == c else crop.reshape(n, c, k // c, geo.h, geo.w).sum(axis=2)

    if need_w:
        return sum_over_chunks(task, chunks, make, (k, *weight.shape[2:]), x.dtype).reshape(weight.shape)
    run_chunks(lambda chunk, ws: task(chunk, None, ws), chunks, make, first_come=True)  # disjoint outputs
    return None


class DepthwiseConv2d(NCHWConv2d):
    """conv2d with groups == channels > 1 (one input channel per group) and a square stride."""

    @staticmethod
    def supports(x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair, groups: int) -> bool:
        return groups == x.shape[1] > 1 and weight.shape[1] == 1 and stride[0] == stride[1]

    fill_forward = staticmethod(depthwise_forward)
    fill_backward = staticmethod(depthwise_backward)
