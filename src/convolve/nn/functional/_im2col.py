"""im2col / col2im and the grouped GEMM behind every convolution (private helpers of `conv.py`).

Layout: inputs are NCHW; the column matrix is built "NHWC-like", one row per output pixel:

    cols[n, oy, ox, c, i, j] = x_pad[n, c, oy*sh + i*dh, ox*sw + j*dw]      # (N, oh, ow, C, kh, kw)

so that `cols.reshape(N*oh*ow, C*kh*kw) @ W.reshape(K, C*kh*kw).T` is the whole convolution as one GEMM,
and the (N*oh*ow, K) result is one transpose away from NCHW. `col2im` is the adjoint of `im2col`: it
scatter-adds every column entry back to the input pixel it was read from (a loop over the kh*kw kernel
offsets only, each step one strided slice of the whole batch).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import as_strided

# Upper bound on the bytes of one im2col buffer; the batch is processed in chunks below this size.
COLS_BUDGET_BYTES = 64 * 2**20


def im2col(x_pad: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
           out_size: tuple[int, int]) -> np.ndarray:
    """Gather every receptive field of the padded input into a contiguous (N, oh, ow, C, kh, kw) array."""
    n, c, _, _ = x_pad.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    s_n, s_c, s_h, s_w = x_pad.strides
    windows = as_strided(  # a read-only view, no copy: (N, oh, ow, C, kh, kw)
        x_pad,
        shape=(n, oh, ow, c, kh, kw),
        strides=(s_n, s_h * sh, s_w * sw, s_c, s_h * dh, s_w * dw),
        writeable=False,
    )
    return np.ascontiguousarray(windows)  # the one copy: im2col proper


def col2im(cols: np.ndarray, padded_size: tuple[int, int], stride: tuple[int, int],
           dilation: tuple[int, int]) -> np.ndarray:
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


def batch_chunks(n: int, bytes_per_item: int, budget: int = COLS_BUDGET_BYTES) -> Iterator[slice]:
    """Slices of the batch such that each chunk's im2col buffer stays under `budget` bytes."""
    step = max(1, budget // max(1, bytes_per_item))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))
