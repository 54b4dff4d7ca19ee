"""im2col / col2im and the chunked channels-last GEMM engine behind every convolution (private to `conv.py`).

Two layouts of the column matrix live here.

* `im2col` (NCHW input, lecture layout, used by the transposed convolution): one row per output pixel,
  `cols[n, oy, ox, c, i, j] = x_pad[n, c, oy*sh + i*dh, ox*sw + j*dw]`, shape (N, oh, ow, C, kh, kw).
* The engine (`conv_nhwc`, `cols_chunks`, `col2im_nhwc`) works channels-last: a padded (n, Hp, Wp, C) chunk
  and `cols[n, oy, ox, i, j, c] = xp[n, oy*sh + i*dh, ox*sw + j*dw, c]`, shape (n*oh*ow, kh*kw*C). Its
  innermost copy is a run of C contiguous channels (not single pixels), and the GEMM
  `cols @ W` with W (kh*kw*C, K) writes rows of output pixels, i.e. the NHWC output itself.

The batch is processed in chunks whose column matrix stays under `COLS_BUDGET_BYTES` (a few MB: it stays in
the 4 MB L2 cache and the buffers are reused across chunks, so no page faults); the backward pass rebuilds
the columns chunk by chunk instead of caching them (PERF_NOTES: ~100 MB instead of ~700 MB per layer).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convolve._threads import run_chunks

# Upper bound on the bytes of one column-matrix chunk (measured best at 2-8 MB on this machine's 4 MB L2).
COLS_BUDGET_BYTES = 4 * 2**20

Pair = tuple[int, int]
Pads = tuple[tuple[int, int], ...]


def im2col(x_pad: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out_size: Pair) -> np.ndarray:
    """Gather every receptive field of the padded NCHW input into a contiguous (N, oh, ow, C, kh, kw) array."""
    n, c, _, _ = x_pad.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    s_n, s_c, s_h, s_w = x_pad.strides
    windows = as_strided(  # a read-only view, no copy: (N, oh, ow, C, kh, kw)
        x_pad, shape=(n, oh, ow, c, kh, kw), strides=(s_n, s_h * sh, s_w * sw, s_c, s_h * dh, s_w * dw),
        writeable=False,
    )
    return np.ascontiguousarray(windows)  # the one copy: im2col proper


def col2im(cols: np.ndarray, padded_size: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
    """Adjoint of `im2col`: sum (N, oh, ow, C, kh, kw) columns back into a zero (N, C, Hp, Wp) array."""
    n, oh, ow, c, kh, kw = cols.shape
    (sh, sw), (dh, dw) = stride, dilation
    out = np.zeros((n, c, *padded_size), dtype=cols.dtype)  # (N, C, Hp, Wp)
    for i in range(kh):  # loop over kernel offsets only; each step touches the whole batch
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cols_ = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            out[:, :, rows, cols_] += cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)  # (N, C, oh, ow)
    return out


def grouped_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(G, M, P) @ (G, P, Q) -> (G, M, Q); one plain GEMM when G == 1 (the common case)."""
    if a.shape[0] == 1:
        return (a[0] @ b[0])[None]
    return np.matmul(a, b)


def batch_chunks(n: int, bytes_per_item: int, budget: int | None = None) -> list[slice]:
    """Slices of the batch such that each chunk's column matrix stays under `budget` bytes (module default)."""
    budget = COLS_BUDGET_BYTES if budget is None else budget
    step = max(1, budget // max(1, bytes_per_item))
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


def out_size(size: Pair, kernel: Pair, stride: Pair, dilation: Pair) -> Pair:
    """Output (oh, ow) of a convolution over an already padded (Hp, Wp) input."""
    return tuple((s - d * (k - 1) - 1) // st + 1 for s, k, st, d in zip(size, kernel, stride, dilation))  # type: ignore


def pad_into(buf: np.ndarray, src: np.ndarray, pads: Pads) -> np.ndarray:
    """Copy NHWC `src` (any strides) into the zero-bordered (n, Hp, Wp, C) `buf`; negative pads crop `src`."""
    (top, _), (left, _) = pads
    h, w = src.shape[1:3]
    y0, x0 = max(top, 0), max(left, 0)  # where src lands in buf
    sy, sx = max(-top, 0), max(-left, 0)  # how much of src is cropped at the start
    hh, ww = min(h - sy, buf.shape[1] - y0), min(w - sx, buf.shape[2] - x0)
    buf[:, y0:y0 + hh, x0:x0 + ww] = src[:, sy:sy + hh, sx:sx + ww]
    return buf


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


class _Workspace:
    """Per-thread reusable buffers: a zero-bordered padded chunk, a column-matrix chunk, a dW accumulator."""

    def __init__(self, chunk: int, padded: tuple[int, int, int], cols_len: int, dtype: np.dtype,
                 acc_shape: tuple[int, ...] = (0,)) -> None:
        self.xp = np.zeros((chunk, *padded), dtype=dtype)  # (n, Hp, Wp, C); borders stay zero
        self.cols = np.empty(cols_len, dtype=dtype)
        self.acc = np.zeros(acc_shape, dtype=dtype)
        self.y = np.empty(0, dtype=dtype)  # GEMM output chunk when the output is not channels-last


def _plan(src: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, pads: Pads) -> tuple[tuple[int, int, int],
                                                                                                Pair, list[slice]]:
    """Padded (Hp, Wp, C), output (oh, ow) and batch chunks of a channels-last convolution of `src`."""
    n, h, w, c = src.shape
    padded = (h + sum(pads[0]), w + sum(pads[1]), c)
    oh_ow = out_size(padded[:2], kernel, stride, dilation)
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

    def task(chunk: slice, ws: _Workspace) -> None:
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

    def make() -> _Workspace:
        ws = _Workspace(step, padded, step * rows_per_item * kernel[0] * kernel[1] * c_g, src.dtype)
        ws.y = np.empty(0 if direct else step * rows_per_item * groups * k_g, dtype=src.dtype)
        return ws

    run_chunks(task, chunks, make)


def conv_weight_grad(src: np.ndarray, grad: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, pads: Pads,
                     groups: int) -> np.ndarray:
    """dW as (G, kh*kw*Cg, Kg) = cols^T @ dY summed over chunks; `grad` is the NHWC (N, oh, ow, K) view of dY."""
    k = grad.shape[3]
    padded, oh_ow, chunks = _plan(src, kernel, stride, dilation, pads)
    c_g, k_g = padded[2] // groups, k // groups
    cols_len = (chunks[0].stop - chunks[0].start) * oh_ow[0] * oh_ow[1] * kernel[0] * kernel[1] * c_g

    def task(chunk: slice, ws: _Workspace) -> None:
        xp = pad_into(ws.xp[: chunk.stop - chunk.start], src[chunk], pads)  # (n, Hp, Wp, C), rebuilt not cached
        g_rows = np.ascontiguousarray(grad[chunk]).reshape(-1, k)  # (n*oh*ow, K); no copy if channels-last
        for g in range(groups):
            cols = cols_of(xp[..., g * c_g:(g + 1) * c_g], kernel, stride, dilation, oh_ow, ws.cols)
            # cols^T @ dY, not dY^T @ cols: OpenBLAS takes a slow path on the latter (PERF_NOTES)
            ws.acc[g] += cols.T @ g_rows[:, g * k_g:(g + 1) * k_g]  # (kh*kw*Cg, Kg)

    def make() -> _Workspace:
        acc_shape = (groups, kernel[0] * kernel[1] * c_g, k_g)
        return _Workspace(chunks[0].stop - chunks[0].start, padded, cols_len, src.dtype, acc_shape)

    workspaces = run_chunks(task, chunks, make)
    return sum((ws.acc for ws in workspaces[1:]), workspaces[0].acc)


def col2im_nhwc(grad: np.ndarray, w_mat: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, pads: Pads,
                dx: np.ndarray) -> None:
    """dx (N, H, W, C) = col2im(dY @ W^T): each column entry scatter-added back onto the pixel it was read from."""
    groups, _, k_g = w_mat.shape
    _, h, w, c = dx.shape
    padded, oh_ow, chunks = _plan(dx, kernel, stride, dilation, pads)
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, oh_ow
    c_g = c // groups
    (top, _), (left, _) = pads

    def task(chunk: slice, ws: _Workspace) -> None:
        m = chunk.stop - chunk.start
        xp = ws.xp[:m]
        xp.fill(0)
        g_rows = np.ascontiguousarray(grad[chunk]).reshape(-1, groups * k_g)  # (m*oh*ow, K)
        for g in range(groups):
            dcols = np.matmul(g_rows[:, g * k_g:(g + 1) * k_g], w_mat[g].T,
                              out=ws.cols[: m * oh * ow * kh * kw * c_g].reshape(m * oh * ow, -1))
            dcols6 = dcols.reshape(m, oh, ow, kh, kw, c_g)  # (m, oh, ow, kh, kw, Cg)
            for i in range(kh):  # loop over kernel offsets only
                for j in range(kw):
                    xp[:, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw,
                       g * c_g:(g + 1) * c_g] += dcols6[:, :, :, i, j]
        dx[chunk] = xp[:, top:top + h, left:left + w]

    cols_len = (chunks[0].stop - chunks[0].start) * oh * ow * kh * kw * c_g
    run_chunks(task, chunks, lambda: _Workspace(chunks[0].stop - chunks[0].start, padded, cols_len, dx.dtype))


# ----- the small-channel path: NCHW-native ("transposed") im2col, one GEMM per image ------------------------
# When C*kh*kw is small (LeNet's 1- and 6-channel layers, an RGB input layer), the channels-last copy moves
# runs of only C values and the GEMM's output has few columns. Here the columns are gathered per image as
# (C*kh*kw, oh*ow), whose rows are runs of `ow` contiguous pixels, and W (K, C*kh*kw) @ cols writes the
# (K, oh*ow) NCHW output of that image directly: no layout conversion at all.


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
                 dtype: np.dtype) -> tuple[Pair, list[slice], Callable[[], _Workspace]]:
    """Output size, chunks and a workspace factory (padded NCHW chunk + columns) of the small-channel path."""
    n, c, h, w = x_shape
    padded = (c, h + sum(pads[0]), w + sum(pads[1]))
    oh_ow = out_size(padded[1:], kernel, stride, dilation)
    per_item = c * kernel[0] * kernel[1] * oh_ow[0] * oh_ow[1]
    chunks = batch_chunks(n, per_item * np.dtype(dtype).itemsize)
    step = chunks[0].stop - chunks[0].start
    return oh_ow, chunks, lambda: _Workspace(step, padded, step * per_item, dtype)


def _padded(ws: _Workspace, x: np.ndarray, pads: Pads) -> np.ndarray:
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

    def task(chunk: slice, ws: _Workspace) -> None:
        cols = _cols_nchw(_padded(ws, x[chunk], pads), kernel, stride, dilation, oh_ow, ws.cols)  # (n, C*kh*kw, oh*ow)
        y = np.matmul(w_mat, cols, out=out[chunk].reshape(-1, k, oh_ow[0] * oh_ow[1]))  # (n, K, oh*ow)
        if bias is not None:
            y += bias[:, None]

    run_chunks(task, chunks, make)


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

    def task(chunk: slice, ws: _Workspace) -> None:
        m = chunk.stop - chunk.start
        g = np.ascontiguousarray(grad[chunk]).reshape(m, k, oh * ow)  # (m, K, oh*ow)
        if need_w:
            cols = _cols_nchw(_padded(ws, x[chunk], pads), (kh, kw), stride, dilation, oh_ow, ws.cols)
            ws.acc += np.matmul(g, cols.transpose(0, 2, 1)).sum(axis=0)  # (K, C*kh*kw)
        if dx is None:
            return
        if direct_dx:
            dx[chunk] = np.matmul(w_mat.T, g).reshape(m, c, h, w)
            return
        dcols = np.matmul(w_mat.T, g, out=ws.cols[: m * c * kh * kw * oh * ow].reshape(m, -1, oh * ow))
        dcols6 = dcols.reshape(m, c, kh, kw, oh, ow)
        xp = ws.xp[:m]
        xp.fill(0)
        for i in range(kh):  # col2im: loop over kernel offsets only
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            for j in range(kw):
                xp[:, :, rows, j * dw:j * dw + sw * (ow - 1) + 1:sw] += dcols6[:, :, i, j]  # (m, C, oh, ow)
        dx[chunk] = xp[:, :, top:top + h, left:left + w]
        xp.fill(0)  # `_padded` relies on zero borders

    def make_acc() -> _Workspace:
        ws = make()
        ws.acc = np.zeros((k, c * kh * kw), dtype=x.dtype)
        return ws

    spaces = run_chunks(task, chunks, make_acc)
    return sum((s.acc for s in spaces[1:]), spaces[0].acc).reshape(weight.shape) if need_w else None
