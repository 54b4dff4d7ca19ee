"""What an engine's kernel is: a subclass of a reference Function that says which calls it takes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from convolve.autograd import Context
from convolve.engines.workspace import one_blas_thread
from convolve.nn.functional.conv import Conv2dFunction
from convolve.nn.functional.geometry import Pads, Pair, padded_output_size


def _holding_blas(method: staticmethod | classmethod) -> staticmethod | classmethod:
    """The same static or class method, run inside `one_blas_thread()`."""
    func: Callable[..., Any] = method.__func__

    @functools.wraps(func)
    def held(*args: Any, **kwargs: Any) -> Any:
        with one_blas_thread():
            return func(*args, **kwargs)

    return type(method)(held)


class Kernel:
    """Mixin for kernels: by default a kernel supports and prefers every call of its reference op.

    Every kernel's `forward` and `backward` run with OpenBLAS held to one thread (`workspace.one_blas_thread`):
    kernels split their work over convolve's threads, and a GEMM that wants OpenBLAS's threads says so.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("forward", "backward"):
            method = cls.__dict__.get(name)
            if isinstance(method, (staticmethod, classmethod)):
                setattr(cls, name, _holding_blas(method))

    @staticmethod
    def supports(*args: Any, **kwargs: Any) -> bool:
        """Whether this kernel computes the call exactly (the engine-equality tests sweep these calls)."""
        return True

    @staticmethod
    def prefers(*args: Any, **kwargs: Any) -> bool:
        """Whether this kernel was measured faster than the kernels after it on this call."""
        return True


class NCHWConv2d(Kernel, Conv2dFunction):
    """A conv2d kernel on NCHW arrays: `fill_forward` writes the output, `fill_backward` dx and returns dW."""

    @staticmethod
    def fill_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, dilation: Pair,
                     padding: Pads, out: np.ndarray) -> None:
        raise NotImplementedError

    @staticmethod
    def fill_backward(x: np.ndarray, grad: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair,
                      padding: Pads, dx: np.ndarray | None, need_w: bool) -> np.ndarray | None:
        raise NotImplementedError

    @classmethod
    def forward(cls, ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *,  # type: ignore[override]
                stride: Pair, padding: Pads, dilation: Pair, groups: int) -> np.ndarray:
        n, _, h, w = x.shape
        k, _, kh, kw = weight.shape
        oh, ow = padded_output_size((h + sum(padding[0]), w + sum(padding[1])), (kh, kw), stride, dilation)
        out = np.empty((n, k, oh, ow), dtype=x.dtype)
        cls.fill_forward(x, weight, bias, stride, dilation, padding, out)
        ctx.save_for_backward(x, weight)  # nothing else cached: backward rebuilds what it needs chunk by chunk
        ctx.geometry = (stride, padding, dilation)
        return out

    @classmethod
    def backward(cls, ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:  # type: ignore[override]
        x, weight = ctx.saved
        stride, padding, dilation = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad
        db = grad.sum(axis=(0, 2, 3)) if need_b else None  # (K,)
        dx = np.empty(x.shape, dtype=x.dtype) if need_x else None  # (N, C, H, W)
        return dx, cls.fill_backward(x, grad, weight, stride, dilation, padding, dx, need_w), db
