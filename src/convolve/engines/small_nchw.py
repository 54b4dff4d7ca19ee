"""The few-channel and 1x1 engine: NCHW-native ("transposed") im2col per image, W @ cols writes NCHW directly.

When C*kh*kw is small (LeNet's 1- and 6-channel layers, an RGB input layer), the channels-last copy moves runs of
only C values and the GEMM's output has few columns. Here the columns are gathered per image as
(C*kh*kw, oh*ow), whose rows are runs of `ow` contiguous pixels, and W (K, C*kh*kw) @ cols writes the (K, oh*ow)
NCHW output of that image directly: no layout conversion at all. A 1x1 stride-1 convolution needs no copy: the
image is its own column matrix (measured: 2-3x faster than the channels-last GEMM for C = 1, 3, 6; 1.4-2.4x
slower from C = 16).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convolve.engines import compiled
from convolve.engines.kernel import NCHWConv2d
from convolve.engines.workspace import Workspace, batch_chunks, run_chunks, sum_over_chunks
from convolve.nn.functional.geometry import Pads, Pair, padded_output_size

__all__ = ["SmallConv2d", "small_backward", "small_forward"]


def _cols_nchw(xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, oh_ow: Pair, buf: np.ndarray) -> np.ndarray:
    """Gather a padded (n, C, Hp, Wp) chunk into `buf` as (n, C*kh*kw, oh*ow); a 1x1 stride-1 conv needs no copy."""
    n, c, _, _ = xp.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, oh_ow
    if kh == kw == sh == sw == 1 and xp.flags.c_contiguous:
        return xp.reshape(n, c, oh * ow)  # the image itself is its column matrix
    s_n, s_c, s_h, s_w = xp.strides
    windows = as_strided(xp, shape=(n, c, kh, kw, oh, ow),  # (n, C, kh, kw, oh, ow) view, no copy
                         strides=(s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw), writeable=False)
    out = buf[: n * c * kh * kw * oh * ow].reshape(n, c, kh, kw, oh, ow)
    np.copyto(out, windows)
    return out.reshape(n, c * kh * kw, oh * ow)


def _small_setup(x_shape: tuple[int, ...], kernel: Pair, stride: Pair, dilation: Pair, pads: Pads,
                 dtype: np.dtype) -> tuple[Pair, list[slice], Callable[[], Workspace]]:
    """Output size, chunks and a workspace factory (padded NCHW chunk + columns) of the small-channel path."""
    n, c, h, w = x_shape
    padded = (c, h + sum(pads[0]), w + sum(pads[1]))
    oh_ow = padded_output_size(padded[1:], kernel, stride, dilation)
    per_item = c * kernel[0] * kernel[1] * oh_ow[0] * oh_ow[1]
    chunks = batch_chunks(n, per_item * np.dtype(dtype).itemsize)
    step = chunks[0].stop - chunks[0].start
    return oh_ow, chunks, lambda: Workspace(step, padded, step * per_item, dtype)


def _padded(ws: Workspace, x: np.ndarray, pads: Pads) -> np.ndarray:
    """The (n, C, H, W) chunk zero-padded in the workspace buffer, or itself when there is no padding."""
    if not any(map(any, pads)):
        return x
    (top, _), (left, _) = pads
    xp = ws.xp[: x.shape[0]]
    xp[:, :, top:top + x.shape[2], left:left + x.shape[3]] = x  # borders stay zero
    return xp


def small_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, dilation: Pair,
                  pads: Pads, out: np.ndarray) -> None:
    """out (N, K, oh, ow) = conv2d(x, weight) + bias for NCHW x and groups == 1, per image W @ cols."""
    k = weight.shape[0]
    kernel = weight.shape[2:]
    w_mat = weight.reshape(k, -1)  # (K, C*kh*kw)
    oh_ow, chunks, make = _small_setup(x.shape, kernel, stride, dilation, pads, x.dtype)

    def task(chunk: slice, ws: Workspace) -> None:
        cols = _cols_nchw(_padded(ws, x[chunk], pads), kernel, stride, dilation, oh_ow, ws.cols)  # (n, C*kh*kw, oh*ow)
        y = np.matmul(w_mat, cols, out=out[chunk].reshape(-1, k, oh_ow[0] * oh_ow[1]))  # (n, K, oh*ow)
        if bias is not None:
            y += bias[:, None]

    run_chunks(task, chunks, make, first_come=True)  # disjoint outputs: any thread may take a chunk


def small_backward(x: np.ndarray, grad: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair, pads: Pads,
                   dx: np.ndarray | None, need_w: bool) -> np.ndarray | None:
    """Fill dx (N, C, H, W) if given (col2im of W^T @ dY); return dW (K, C, kh, kw) if `need_w`."""
    k, c, kh, kw = weight.shape
    w_mat = weight.reshape(k, -1)  # (K, C*kh*kw)
    oh_ow, chunks, make = _small_setup(x.shape, (kh, kw), stride, dilation, pads, x.dtype)
    (oh, ow), (sh, sw), (dh, dw) = oh_ow, stride, dilation
    (top, _), (left, _) = pads
    h, w = x.shape[2:]

    direct_dx = kh == kw == sh == sw == 1 and not any(map(any, pads))  # 1x1: dX = W^T @ dY, no col2im
    col2im_loop = compiled.col2im_loop("nchw", dx)

    def task(chunk: slice, acc: np.ndarray | None, ws: Workspace) -> None:
        m = chunk.stop - chunk.start
        g = np.ascontiguousarray(grad[chunk]).reshape(m, k, oh * ow)  # (m, K, oh*ow)
        if acc is not None:
            cols = _cols_nchw(_padded(ws, x[chunk], pads), (kh, kw), stride, dilation, oh_ow, ws.cols)
            acc += np.matmul(g, cols.transpose(0, 2, 1)).sum(axis=0)  # (K, C*kh*kw): this chunk's share
        if dx is None:
            return
        if direct_dx:
            dx[chunk] = np.matmul(w_mat.T, g).reshape(m, c, h, w)
            return
        dcols = np.matmul(w_mat.T, g, out=ws.cols[: m * c * kh * kw * oh * ow].reshape(m, -1, oh * ow))
        dcols6 = dcols.reshape(m, c, kh, kw, oh, ow)
        xp = ws.xp[:m]
        xp.fill(0)
        if col2im_loop is not None:  # the same sums, compiled (4-6x faster than the strided adds)
            col2im_loop(dcols6, xp, sh, sw, dh, dw)
        else:
            for i in range(kh):  # col2im: loop over kernel offsets only
                rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
                for j in range(kw):
                    xp[:, :, rows, j * dw:j * dw + sw * (ow - 1) + 1:sw] += dcols6[:, :, i, j]  # (m, C, oh, ow)
        dx[chunk] = xp[:, :, top:top + h, left:left + w]
        xp.fill(0)  # `_padded` relies on zero borders

    if need_w:
        return sum_over_chunks(task, chunks, make, (k, c * kh * kw), x.dtype).reshape(weight.shape)
    run_chunks(lambda chunk, ws: task(chunk, None, ws), chunks, make, first_come=True)  # disjoint outputs
    return None



class SmallConv2d(NCHWConv2d):
    """Ungrouped conv2d with few input channels or a 1x1 kernel, on the NCHW-native im2col."""

    max_channels = 8  # ungrouped layers with at most this many input channels (and every 1x1 layer) prefer it

    @staticmethod
    def supports(x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair, groups: int) -> bool:
        return groups == 1

    @classmethod
    def prefers(cls, x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair,  # type: ignore[override]
                groups: int) -> bool:
        return x.shape[1] <= cls.max_channels or tuple(weight.shape[2:]) == (1, 1)

    fill_forward = staticmethod(small_forward)
    fill_backward = staticmethod(small_backward)
