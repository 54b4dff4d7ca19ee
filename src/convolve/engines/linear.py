"""The linear kernel of the "fast" engine: the reference's GEMMs, with OpenBLAS's threads only where they pay.

A linear layer's GEMM runs outside the chunk threads, on OpenBLAS's own threads. Below BLAS_THREADING_MIN_MACS
multiply-adds (~1 ms of work) the hand-off costs more than it saves, and on a busy machine OpenBLAS's spinning
threads made a LeNet-5 step take 2.2x the CPU time of one thread (68 vs 31 ms): such GEMMs run on one thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.autograd import Context
from convolve.engines.kernel import Kernel
from convolve.engines.workspace import blas_threads_for
from convolve.nn.functional.linear import LinearFunction

__all__ = ["ThreadAwareLinear"]


class ThreadAwareLinear(Kernel, LinearFunction):
    """linear with each GEMM on as many OpenBLAS threads as its size pays for (every call)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        with blas_threads_for(x.size // max(1, weight.shape[1]) * weight.size):  # M * out * in multiply-adds
            return LinearFunction.forward(ctx, x, weight, bias)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x2, weight = ctx.saved
        with blas_threads_for(x2.shape[0] * weight.size):  # each product has M * out * in multiply-adds
            return LinearFunction.backward(ctx, grad)
