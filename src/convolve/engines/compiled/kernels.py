"""The compiled kernels: subclasses of the reference Functions whose passes run as Numba loops (`loops.py`).

Each class says which calls it `supports` (float32/float64, C-contiguous, over MIN_ELEMENTS values: `pays_for`)
and computes what the reference computes in fewer passes over memory, on convolve's threads in ranges of ~512 KB
(`run_ranges`). ReLU, float64 tanh, the pools and col2im give the reference's result to the bit; float32 tanh is
within 1 ulp of the correctly rounded value; batch norm sums in float64 (as PyTorch), so it differs from the
reference's float32 sums by rounding only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convolve.autograd import Context
from convolve.engines.compiled import compiled_loops, pays_for, run_ranges
from convolve.engines.kernel import Kernel
from convolve.nn.functional.activation import ReLUFunction, TanhFunction
from convolve.nn.functional.norm import BatchNormFunction, update_running_stats
from convolve.nn.functional.pool import AvgPool2dFunction, MaxPool2dFunction

__all__ = ["CompiledAvgPool2d", "CompiledBatchNorm", "CompiledMaxPool2d", "CompiledReLU", "CompiledTanh"]


def _from_output(loop: Callable[..., None], out: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """The input gradient of an activation whose derivative is a function of its output: loop(grad, out, gx, a, b)
    fills gx over flat ranges [a, b) on the threads."""
    g = np.ascontiguousarray(grad, dtype=out.dtype).reshape(-1)
    gx = np.empty(out.shape, out.dtype)
    flat_out, flat_gx = out.reshape(-1), gx.reshape(-1)
    run_ranges(lambda a, b: loop(g, flat_out, flat_gx, a, b), g.size, g.itemsize)
    return gx


class CompiledReLU(Kernel, ReLUFunction):
    """ReLU in one pass each way; backward fuses the mask and the product (NumPy: compare, then multiply)."""

    @staticmethod
    def supports(x: Any, inplace: bool = False) -> bool:
        return pays_for(x)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, inplace: bool = False) -> np.ndarray:
        loops = compiled_loops()
        out = x if inplace else np.empty_like(x)
        flat_x, flat_out = x.reshape(-1), out.reshape(-1)
        run_ranges(lambda a, b: loops.relu_forward(flat_x, flat_out, a, b), flat_x.size, x.itemsize)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        return (_from_output(compiled_loops().relu_backward, ctx.saved[0], grad),)


class CompiledTanh(Kernel, TanhFunction):
    """tanh over ranges on the threads: float32 a compiled rational approximation (within 1 ulp of the correctly
    rounded value, `loops.tanh_forward_f32`; 2.5x faster than NumPy's scalar float32 tanh), float64 NumPy's tanh
    (the reference's ufunc, so the same bits); backward grad * (1 - t^2) fused in one compiled pass."""

    @staticmethod
    def supports(x: Any) -> bool:
        return pays_for(x)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        flat_x, flat_out = x.reshape(-1), out.reshape(-1)
        if x.dtype == np.float32:
            loop = compiled_loops().tanh_forward_f32
            run_ranges(lambda a, b: loop(flat_x, flat_out, a, b), flat_x.size, x.itemsize)
        else:
            run_ranges(lambda a, b: np.tanh(flat_x[a:b], out=flat_out[a:b]), flat_x.size, x.itemsize)  # no GIL held
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        return (_from_output(compiled_loops().tanh_backward, ctx.saved[0], grad),)


class CompiledBatchNorm(Kernel, BatchNormFunction):
    """Training-mode batch norm per channel: forward 3 passes (sum, centred squares, normalise), backward 2
    (the two sums, then dx). Channels are independent, so the result does not depend on the thread count."""

    @staticmethod
    def supports(x: Any, weight: Any, bias: Any, *, training: bool, **_: Any) -> bool:
        return training and getattr(x, "ndim", 0) >= 2 and pays_for(x, weight, bias)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                running_mean: np.ndarray | None, running_var: np.ndarray | None, training: bool, momentum: float,
                eps: float) -> np.ndarray:
        loops = compiled_loops()
        x3 = x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, L)
        n, c, length = x3.shape
        w = np.ones(c, x.dtype) if weight is None else weight
        b = np.zeros(c, x.dtype) if bias is None else bias
        out = np.empty_like(x3)
        mean, var, inv_std = np.empty(c, x.dtype), np.empty(c, x.dtype), np.empty(c, x.dtype)
        run_ranges(lambda c0, c1: loops.batch_norm_forward(x3, w, b, eps, out, mean, var, inv_std, c0, c1), c,
                   n * length * x.itemsize)
        update_running_stats(running_mean, running_var, mean, var, momentum, n * length)
        ctx.save_for_backward(x, weight)
        ctx.mean, ctx.inv_std, ctx.training = mean, inv_std, True
        ctx.scale = inv_std if weight is None else weight * inv_std
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        loops = compiled_loops()
        x, _ = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        x3 = x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, L)
        g3 = np.ascontiguousarray(grad, dtype=x.dtype).reshape(x3.shape)
        n, c, length = x3.shape
        gx = np.empty_like(x3) if need_x else np.empty((0, 0, 0), x.dtype)
        sum_dy, dot = np.empty(c, x.dtype), np.empty(c, x.dtype)
        run_ranges(lambda c0, c1: loops.batch_norm_backward(x3, g3, ctx.mean, ctx.inv_std, ctx.scale, gx, sum_dy,
                                                            dot, c0, c1), c, 2 * n * length * x.itemsize)
        gw = dot * ctx.inv_std if need_w else None
        return gx.reshape(x.shape) if need_x else None, gw, sum_dy if need_b else None


class CompiledMaxPool2d(Kernel, MaxPool2dFunction):
    """2x2 stride-2 max pooling (MaxPool2d(2), by far the most common) in one pass that also records each
    window's arg-max (the reference searches it again in backward); backward writes every input gradient once,
    from the saved indices. Planes holding a NaN take the exact general loop (PyTorch's NaN rule). Other window
    shapes stay on the reference: a general compiled loop nest measured slower than NumPy's strided maxima."""

    @staticmethod
    def supports(x: Any, *, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                 dilation: tuple[int, int], out: tuple[int, int], **_: Any) -> bool:
        windows_inside = 2 * out[0] <= x.shape[-2] and 2 * out[1] <= x.shape[-1]  # no partial ceil_mode window
        plain = kernel == stride == (2, 2) and padding == (0, 0) and dilation == (1, 1)
        return getattr(x, "ndim", 0) >= 2 and pays_for(x) and plain and windows_inside

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], dilation: tuple[int, int], out: tuple[int, int],
                indices: list[np.ndarray] | None = None) -> np.ndarray:
        loops = compiled_loops()
        h, w = x.shape[-2:]
        planes = x.reshape(-1, h, w)  # (P, H, W)
        p = planes.shape[0]
        y = np.empty((p, *out), x.dtype)  # (P, oh, ow)
        arg = np.empty((p, *out), np.int32)  # flat index into the H*W plane
        def task(p0: int, p1: int) -> None:
            if loops.planes_have_nan(planes, p0, p1):
                loops.max_pool_forward(planes, kernel, stride, padding, dilation, y, arg, p0, p1)
            else:
                loops.max_pool_2x2_forward(planes, y, arg, p0, p1)

        run_ranges(task, p, h * w * x.itemsize)
        ctx.arg, ctx.shape = arg, x.shape
        if indices is not None:
            indices.append(arg.astype(np.int64).reshape(*x.shape[:-2], *out))
        return y.reshape(*x.shape[:-2], *out)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        loops = compiled_loops()
        arg, shape = ctx.arg, ctx.shape
        g = np.ascontiguousarray(grad).reshape(arg.shape)  # (P, oh, ow)
        gx = np.empty((arg.shape[0], shape[-2] * shape[-1]), grad.dtype)  # (P, H*W)
        run_ranges(lambda p0, p1: loops.max_pool_backward(g, arg, gx, p0, p1), arg.shape[0],
                   shape[-2] * shape[-1] * grad.itemsize)
        return (gx.reshape(shape),)


class CompiledAvgPool2d(Kernel, AvgPool2dFunction):
    """2x2 stride-2 average pooling (LeNet-5's subsampling) over planes that the windows tile exactly: one pass
    each way, with the reference's order of additions (bit-identical); other windows stay on the reference."""

    @staticmethod
    def supports(x: Any, *, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                 out: tuple[int, int], **_: Any) -> bool:
        tiled = 2 * out[0] == x.shape[-2] and 2 * out[1] == x.shape[-1]
        return getattr(x, "ndim", 0) >= 2 and pays_for(x) and kernel == stride == (2, 2) and padding == (0, 0) and tiled

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], out: tuple[int, int], count_include_pad: bool,
                divisor_override: int | None) -> np.ndarray:
        loops = compiled_loops()
        h, w = x.shape[-2:]
        planes = x.reshape(-1, h, w)  # (P, H, W)
        y = np.empty((planes.shape[0], *out), x.dtype)  # (P, oh, ow)
        divisor = 4 if divisor_override is None else divisor_override  # full windows, no padding
        run_ranges(lambda p0, p1: loops.avg_pool_2x2_forward(planes, divisor, y, p0, p1), planes.shape[0],
                   h * w * x.itemsize)
        ctx.divisor, ctx.shape = divisor, x.shape
        return y.reshape(*x.shape[:-2], *out)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        loops = compiled_loops()
        shape = ctx.shape
        g = np.ascontiguousarray(grad).reshape(-1, *grad.shape[-2:])  # (P, oh, ow)
        gx = np.empty((g.shape[0], *shape[-2:]), grad.dtype)  # (P, H, W)
        run_ranges(lambda p0, p1: loops.avg_pool_2x2_backward(g, ctx.divisor, gx, p0, p1), g.shape[0],
                   shape[-2] * shape[-1] * grad.itemsize)
        return (gx.reshape(shape),)
