"""The whole-window kernel: a convolution whose filter covers the whole unpadded input is one fully connected layer.

With kh = H, kw = W and no padding, the output is 1x1 and every output channel sees the whole image:

    y[n, k, 0, 0] = sum_{c,i,j} W[k, c, i, j] x[n, c, i, j] + b[k],   i.e. y = x.reshape(N, C*H*W) @ W.reshape(K, -1).T

(LeNet-5's C5: 16x5x5 -> 120; the "fully connected layers as convolutions" of a convolutionalised VGG head). The
NCHW arrays are already the GEMM's row-major matrices, so there is nothing to copy: one GEMM each way instead of
the channels-last path's layout copies and batch chunks (measured on C5, batch 128, 1 thread: 0.25 vs 0.65 ms
forward). Each GEMM runs on as many OpenBLAS threads as its size pays for (`blas_threads_for`, as `linear`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.autograd import Context
from convolve.engines.kernel import Kernel
from convolve.engines.workspace import blas_threads_for
from convolve.nn.functional.conv import Conv2dFunction
from convolve.nn.functional.geometry import Pads, Pair

__all__ = ["WholeWindowConv2d"]


class WholeWindowConv2d(Kernel, Conv2dFunction):
    """conv2d with an ungrouped, undilated filter as large as the unpadded input (a 1x1 output) as one GEMM."""

    @staticmethod
    def supports(x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair, groups: int) -> bool:
        return (groups == 1 and dilation == (1, 1) and not any(map(any, padding))
                and tuple(weight.shape[2:]) == tuple(x.shape[2:]))

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *,  # type: ignore[override]
                stride: Pair, padding: Pads, dilation: Pair, groups: int) -> np.ndarray:
        n, k = x.shape[0], weight.shape[0]
        x2 = np.ascontiguousarray(x).reshape(n, -1)  # (N, C*H*W)
        w2 = weight.reshape(k, -1)  # (K, C*H*W)
        with blas_threads_for(n * w2.size):
            y = x2 @ w2.T  # (N, K)
        if bias is not None:
            y += bias
        ctx.save_for_backward(x2, weight)
        return y.reshape(n, k, 1, 1)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:  # type: ignore[override]
        x2, weight = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad
        g = grad.reshape(grad.shape[0], -1)  # (N, K)
        w2 = weight.reshape(weight.shape[0], -1)  # (K, C*H*W)
        with blas_threads_for(x2.shape[0] * w2.size):
            dx = (g @ w2).reshape(x2.shape[0], *weight.shape[1:]) if need_x else None  # (N, C, H, W)
            dw = (g.T @ x2).reshape(weight.shape) if need_w else None  # (K, C, kh, kw)
        return dx, dw, g.sum(axis=0) if need_b else None
