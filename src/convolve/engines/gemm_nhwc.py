"""The channels-last GEMM engine: im2col of each batch chunk in NHWC, one GEMM per group writing output rows.

The column matrix is laid out channels-last: a padded (n, Hp, Wp, C) chunk gives
`cols[n, oy, ox, i, j, c] = xp[n, oy*sh + i*dh, ox*sw + j*dw, c]`, shape (n*oh*ow, kh*kw*C). Its innermost copy
is a run of C contiguous channels (not single pixels), and the GEMM `cols @ W` with W (kh*kw*C, K) writes rows
of output pixels, i.e. the NHWC output itself. The batch is processed in chunks whose column matrix stays under
`workspace.COLS_BUDGET_BYTES`, in per-thread buffers reused across chunks; backward rebuilds the columns chunk
by chunk instead of caching them (~100 MB instead of ~700 MB per layer). The stride-1 input gradient is the
flipped-filter convolution of dY when that is cheaper than col2im (`GemmConv2d.flipped_min_channels`).
This kernel takes every conv2d: the other kernels of the "fast" engine come first for the layers they win.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convolve.autograd import Context
from convolve.engines import compiled
from convolve.engines.kernel import Kernel
from convolve.engines.workspace import Workspace, batch_chunks, pad_into, run_chunks, sum_over_chunks
from convolve.nn.functional.conv import Conv2dFunction
from convolve.nn.functional.geometry import Pads, Pair, padded_output_size

__all__ = ["GemmConv2d", "col2im_nhwc", "conv_nhwc", "conv_weight_grad"]


class GemmConv2d(Kernel, Conv2dFunction):
    """conv2d through the channels-last chunked GEMM; takes every call (the fallback of the "fast" engine)."""

    # The stride-1 input gradient runs as a convolution of dY with the flipped filters when the layer has at least
    # this many input channels per group (its GEMM writes C columns) and H*W <= 2*oh*ow (its GEMM has H*W rows);
    # otherwise col2im(dY @ W) is faster (measured).
    flipped_min_channels = 8

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *, stride: Pair,
                padding: Pads, dilation: Pair, groups: int) -> np.ndarray:
        n, _, h, w = x.shape
        k, _, kh, kw = weight.shape
        oh, ow = padded_output_size((h + sum(padding[0]), w + sum(padding[1])), (kh, kw), stride, dilation)
        out = np.empty((n, k, oh, ow), dtype=x.dtype)  # (N, K, oh, ow)
        src = x.transpose(0, 2, 3, 1)  # (N, H, W, C) view
        conv_nhwc(src, _w_mat(weight, groups), (kh, kw), stride, dilation, padding, out.transpose(0, 2, 3, 1), bias)
        ctx.save_for_backward(x, weight)  # no im2col cached: backward rebuilds it chunk by chunk
        ctx.geometry = (stride, padding, dilation, groups)
        return out

    @classmethod
    def backward(cls, ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:  # type: ignore[override]
        x, weight = ctx.saved
        stride, padding, dilation, groups = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad
        db = grad.sum(axis=(0, 2, 3)) if need_b else None  # (K,)
        src, g = x.transpose(0, 2, 3, 1), grad.transpose(0, 2, 3, 1)  # (N, H, W, C), (N, oh, ow, K)
        dx = np.empty(x.shape, dtype=x.dtype) if need_x else None  # (N, C, H, W)
        dx_nhwc = None if dx is None else dx.transpose(0, 2, 3, 1)
        dw = _gemm_backward(src, g, weight, stride, padding, dilation, groups, dx_nhwc, need_w,
                            cls.flipped_min_channels)
        return dx, dw, db


def _w_mat(weight: np.ndarray, groups: int) -> np.ndarray:
    """Filters (K, Cg, kh, kw) as GEMM operands (G, kh*kw*Cg, Kg), rows in the channels-last im2col order."""
    k, c_g, kh, kw = weight.shape
    w5 = weight.reshape(groups, k // groups, c_g, kh, kw)
    return w5.transpose(0, 3, 4, 2, 1).reshape(groups, kh * kw * c_g, k // groups)


def _flipped_w_mat(weight: np.ndarray, groups: int) -> np.ndarray:
    """The filters of the input gradient of a stride-1 conv: spatially flipped, in/out swapped (G, kh*kw*Kg, Cg)."""
    k, c_g, kh, kw = weight.shape
    w5 = weight.reshape(groups, k // groups, c_g, kh, kw)[..., ::-1, ::-1]
    return w5.transpose(0, 3, 4, 1, 2).reshape(groups, kh * kw * (k // groups), c_g)


def _gemm_backward(src: np.ndarray, g: np.ndarray, weight: np.ndarray, stride: Pair, padding: Pads, dilation: Pair,
                   groups: int, dx: np.ndarray | None, need_w: bool,
                   flipped_min_channels: int) -> np.ndarray | None:
    """Channels-last backward: fill dx (N, H, W, C) if given; return dW (K, Cg, kh, kw) if `need_w`."""
    k, c_g, kh, kw = weight.shape
    dw = None
    if need_w:  # the correlation of the input with dY
        dw_mat = conv_weight_grad(src, g, (kh, kw), stride, dilation, padding, groups)  # (G, kh*kw*Cg, Kg)
        dw = np.ascontiguousarray(dw_mat.reshape(groups, kh, kw, c_g, k // groups).transpose(0, 4, 3, 1, 2))
        dw = dw.reshape(weight.shape)
    rows_ratio = src.shape[1] * src.shape[2] / (g.shape[1] * g.shape[2])  # H*W / (oh*ow)
    flipped = stride == (1, 1) and c_g >= flipped_min_channels and rows_ratio <= 2
    if dx is not None and flipped:  # full conv with flipped filters (its GEMM has H*W rows, col2im's oh*ow)
        g_pads = tuple((d * (kk - 1) - lo, d * (kk - 1) - hi) for (lo, hi), kk, d in zip(padding, (kh, kw), dilation))
        conv_nhwc(g, _flipped_w_mat(weight, groups), (kh, kw), (1, 1), dilation, g_pads, dx)
    elif dx is not None:  # col2im(dY @ W^T) scatters each column back onto its pixel
        col2im_nhwc(g, _w_mat(weight, groups), (kh, kw), stride, dilation, padding, dx)
    return dw


def cols_of(xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, oh_ow: Pair, buf: np.ndarray) -> np.ndarray:
    """Channels-last im2col of a padded (n, Hp, Wp, C) chunk into `buf`, viewed as (n*oh*ow, kh*kw*C)."""
    n, _, _, c = xp.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, oh_ow
    s_n, s_h, s_w, s_c = xp.strides
    windows = as_strided(xp, shape=(n, oh, ow, kh, kw, c),  # (n, oh, ow, kh, kw, C) view, no copy
                         strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c), writeable=False)
    out = buf[: n * oh * ow * kh * kw * c].reshape(n, oh, ow, kh, kw, c)
    np.copyto(out, windows)
    return out.reshape(n * oh * ow, kh * kw * c)


def _plan(src: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, pads: Pads) -> tuple[tuple[int, int, int],
                                                                                                Pair, list[slice]]:
    """Padded (Hp, Wp, C), output (oh, ow) and batch chunks of a channels-last convolution of `src`."""
    n, h, w, c = src.shape
    padded = (h + sum(pads[0]), w + sum(pads[1]), c)
    oh_ow = padded_output_size(padded[:2], kernel, stride, dilation)
    return padded, oh_ow, batch_chunks(n, oh_ow[0] * oh_ow[1] * kernel[0] * kernel[1] * c * src.itemsize)


def conv_nhwc(src: np.ndarray, w_mat: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, pads: Pads,
              out: np.ndarray, bias: np.ndarray | None = None) -> None:
    """out (N, oh, ow, K) = correlation of the NHWC view `src` (padded by `pads`) with w_mat (G, kh*kw*Cg, Kg).

    `out` may be the NHWC view of an NCHW array: each chunk's GEMM then writes a cache-resident buffer that is
    transposed into place, instead of transposing the whole output afterwards (page faults, cache misses).
    """
    groups, _, k_g = w_mat.shape
    padded, oh_ow, chunks = _plan(src, kernel, stride, dilation, pads)
    c_g = padded[2] // groups
    step = chunks[0].stop - chunks[0].start
    rows_per_item = oh_ow[0] * oh_ow[1]
    direct = out.flags.c_contiguous

    def task(chunk: slice, ws: Workspace) -> None:
        n = chunk.stop - chunk.start
        xp = pad_into(ws.xp[:n], src[chunk], pads)  # (n, Hp, Wp, C)
        y = (out[chunk] if direct else ws.y[: n * rows_per_item * groups * k_g]).reshape(-1, groups * k_g)
        for g in range(groups):  # y: (n*oh*ow, K), the output rows of this chunk
            cols = cols_of(xp[..., g * c_g:(g + 1) * c_g], kernel, stride, dilation, oh_ow, ws.cols)
            np.matmul(cols, w_mat[g], out=y[:, g * k_g:(g + 1) * k_g])  # (n*oh*ow, Kg)
        if bias is not None:
            y += bias  # while the chunk is still in cache
        if not direct:
            out[chunk] = y.reshape(n, *oh_ow, groups * k_g)

    def make() -> Workspace:
        ws = Workspace(step, padded, step * rows_per_item * kernel[0] * kernel[1] * c_g, src.dtype)
        ws.y = np.empty(0 if direct else step * rows_per_item * groups * k_g, dtype=src.dtype)
        return ws

    run_chunks(task, chunks, make, first_come=True)  # disjoint outputs: any thread may take a chunk


def conv_weight_grad(src: np.ndarray, grad: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, pads: Pads,
                     groups: int) -> np.ndarray:
    """dW as (G, kh*kw*Cg, Kg) = cols^T @ dY summed over chunks; `grad` is the NHWC (N, oh, ow, K) view of dY."""
    k = grad.shape[3]
    padded, oh_ow, chunks = _plan(src, kernel, stride, dilation, pads)
    c_g, k_g = padded[2] // groups, k // groups
    cols_len = (chunks[0].stop - chunks[0].start) * oh_ow[0] * oh_ow[1] * kernel[0] * kernel[1] * c_g

    def task(chunk: slice, acc: np.ndarray, ws: Workspace) -> None:
        xp = pad_into(ws.xp[: chunk.stop - chunk.start], src[chunk], pads)  # (n, Hp, Wp, C), rebuilt not cached
        g_rows = np.ascontiguousarray(grad[chunk]).reshape(-1, k)  # (n*oh*ow, K); no copy if channels-last
        for g in range(groups):
            cols = cols_of(xp[..., g * c_g:(g + 1) * c_g], kernel, stride, dilation, oh_ow, ws.cols)
            # cols^T @ dY, not dY^T @ cols: OpenBLAS takes a slow path on the latter (RESULTS.md)
            np.matmul(cols.T, g_rows[:, g * k_g:(g + 1) * k_g], out=acc[g])  # (kh*kw*Cg, Kg): this chunk's share

    def make() -> Workspace:
        return Workspace(chunks[0].stop - chunks[0].start, padded, cols_len, src.dtype)

    return sum_over_chunks(task, chunks, make, (groups, kernel[0] * kernel[1] * c_g, k_g), src.dtype)


def col2im_nhwc(grad: np.ndarray, w_mat: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, pads: Pads,
                dx: np.ndarray) -> None:
    """dx (N, H, W, C) = col2im(dY @ W^T): each column entry scatter-added back onto the pixel it was read from."""
    groups, _, k_g = w_mat.shape
    _, h, w, c = dx.shape
    padded, oh_ow, chunks = _plan(dx, kernel, stride, dilation, pads)
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, oh_ow
    c_g = c // groups
    (top, _), (left, _) = pads
    col2im_loop = compiled.col2im_loop("nhwc", dx)

    def task(chunk: slice, ws: Workspace) -> None:
        m = chunk.stop - chunk.start
        xp = ws.xp[:m]
        xp.fill(0)
        g_rows = np.ascontiguousarray(grad[chunk]).reshape(-1, groups * k_g)  # (m*oh*ow, K)
        for g in range(groups):
            dcols = np.matmul(g_rows[:, g * k_g:(g + 1) * k_g], w_mat[g].T,
                              out=ws.cols[: m * oh * ow * kh * kw * c_g].reshape(m * oh * ow, -1))
            dcols6 = dcols.reshape(m, oh, ow, kh, kw, c_g)  # (m, oh, ow, kh, kw, Cg)
            target = xp[..., g * c_g:(g + 1) * c_g]
            if col2im_loop is not None:  # the same sums, compiled (4-6x faster than the strided adds)
                col2im_loop(dcols6, target, sh, sw, dh, dw)
                continue
            for i in range(kh):  # loop over kernel offsets only
                for j in range(kw):
                    target[:, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw] += \
                        dcols6[:, :, :, i, j]
        dx[chunk] = xp[:, top:top + h, left:left + w]

    cols_len = (chunks[0].stop - chunks[0].start) * oh * ow * kh * kw * c_g
    run_chunks(task, chunks, lambda: Workspace(chunks[0].stop - chunks[0].start, padded, cols_len, dx.dtype),
               first_come=True)  # disjoint rows of dx
