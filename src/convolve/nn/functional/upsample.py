"""interpolate (nearest, nearest-exact, linear, bilinear, bicubic, trilinear), as `torch.nn.functional.interpolate`.

Resizing is separable: along each spatial axis the output is a fixed (out, in) matrix times the input, whose
rows hold the interpolation weights (a single 1 for nearest, two weights summing to 1 for linear, four Keys cubic
weights for bicubic). The forward contracts each axis with its matrix; the backward contracts the gradient with
the transposed matrices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from convolve._validate import check_float
from convolve.autograd import Context, Function
from convolve.tensor import Tensor

__all__ = ["interpolate", "upsample"]

MODES = {"nearest": (3, 4, 5), "nearest-exact": (3, 4, 5), "linear": (3,), "bilinear": (4,), "bicubic": (4,),
         "trilinear": (5,)}
CUBIC_A = -0.75  # PyTorch's (and OpenCV's) cubic convolution parameter


def _contract(x: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    """x with `axis` replaced by m @ (that axis): (..., in, ...) -> (..., out, ...)."""
    return np.moveaxis(np.tensordot(x, m, axes=([axis], [1])), -1, axis)


class Interpolate(Function):
    """y = x contracted with one (out, in) weight matrix per spatial axis."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
        ctx.matrices = matrices
        for i, m in enumerate(matrices):
            x = _contract(x, m, 2 + i)
        return np.ascontiguousarray(x)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        for i, m in enumerate(ctx.matrices):
            grad = _contract(grad, m.T, 2 + i)
        return (np.ascontiguousarray(grad),)


def _nearest_matrix(size_in: int, size_out: int, scale: float, exact: bool) -> np.ndarray:
    """Row o picks input floor(o * scale) (PyTorch's legacy 'nearest') or floor((o + 0.5) * scale)."""
    dst, s = np.arange(size_out, dtype=np.float32), np.float32(scale)  # float32 index math, as PyTorch's kernel
    src = np.floor((dst + np.float32(0.5)) * s if exact else dst * s).astype(np.int64)
    m = np.zeros((size_out, size_in))
    m[np.arange(size_out), np.minimum(src, size_in - 1)] = 1.0
    return m


def _linear_matrix(size_in: int, size_out: int, scale: float, align_corners: bool) -> np.ndarray:
    """Row o blends the two inputs around the source coordinate (PyTorch's area_pixel_compute_source_index)."""
    dst = np.arange(size_out, dtype=np.float64)
    if align_corners:
        src = dst * ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
    else:
        src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = src - lo
    m = np.zeros((size_out, size_in))
    rows = np.arange(size_out)
    np.add.at(m, (rows, lo), 1.0 - frac)
    np.add.at(m, (rows, hi), frac)
    return m


def _cubic_near(x: np.ndarray) -> np.ndarray:
    """Keys' kernel for |x| <= 1."""
    return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1


def _cubic_far(x: np.ndarray) -> np.ndarray:
    """Keys' kernel for 1 < |x| < 2."""
    return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A


def _cubic_matrix(size_in: int, size_out: int, scale: float, align_corners: bool) -> np.ndarray:
    """Row o holds Keys' four cubic-convolution weights on inputs floor(src)-1 .. floor(src)+2, clamped to the
    edge (PyTorch's upsample_bicubic2d; the source coordinate is not clamped at 0, unlike linear)."""
    dst = np.arange(size_out, dtype=np.float64)
    if align_corners:
        src = dst * ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
    else:
        src = (dst + 0.5) * scale - 0.5
    base = np.floor(src).astype(np.int64)
    t = src - base
    weights = (_cubic_far(t + 1), _cubic_near(t), _cubic_near(1 - t), _cubic_far(2 - t))
    m = np.zeros((size_out, size_in))
    rows = np.arange(size_out)
    for k, w in enumerate(weights):
        np.add.at(m, (rows, np.clip(base - 1 + k, 0, size_in - 1)), w)
    return m


def _output_sizes(input: Tensor, size: Any, scale_factor: Any, recompute: bool | None, fn: str
                  ) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(output sizes, the scale in->out used for source coordinates) per spatial axis, by PyTorch's rules."""
    spatial = tuple(input.shape[2:])
    nd = len(spatial)
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{fn}: give exactly one of `size` and `scale_factor`, got size={size!r}, "
                         f"scale_factor={scale_factor!r}")
    if size is not None:
        sizes = (size,) * nd if isinstance(size, int) else tuple(size)
        if len(sizes) != nd or any(not isinstance(s, int) or s < 1 for s in sizes):
            raise ValueError(f"{fn}: `size` must be a positive int or {nd} positive ints for input of shape "
                             f"{tuple(input.shape)}, got {size!r}")
        return sizes, tuple(i / o for i, o in zip(spatial, sizes))
    factors = (scale_factor,) * nd if isinstance(scale_factor, int | float) else tuple(scale_factor)
    if len(factors) != nd or any(not f > 0 for f in factors):
        raise ValueError(f"{fn}: `scale_factor` must be a positive number or {nd} of them for input of shape "
                         f"{tuple(input.shape)}, got {scale_factor!r}")
    sizes = tuple(math.floor(i * float(f)) for i, f in zip(spatial, factors))
    if any(s < 1 for s in sizes):
        raise ValueError(f"{fn}: `scale_factor` {scale_factor!r} gives an empty output from spatial size {spatial}")
    scales = tuple(i / o for i, o in zip(spatial, sizes)) if recompute else tuple(1 / float(f) for f in factors)
    return sizes, scales


def interpolate(input: Tensor, size: int | Sequence[int] | None = None,
                scale_factor: float | Sequence[float] | None = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resize the spatial dims of (N, C, L), (N, C, H, W) or (N, C, D, H, W) input to `size` or by `scale_factor`."""
    fn = "interpolate"
    check_float(input, "input", fn)
    if mode not in MODES:
        raise ValueError(f"{fn}: `mode` must be one of {sorted(MODES)}, got {mode!r} (area is not implemented)")
    if input.ndim not in MODES[mode]:
        raise ValueError(f"{fn}: mode {mode!r} expects {' or '.join(f'{d}-D' for d in MODES[mode])} input, got "
                         f"shape {tuple(input.shape)}")
    linear = mode in ("linear", "bilinear", "trilinear", "bicubic")
    if align_corners is not None and not linear:
        raise ValueError(f"{fn}: `align_corners` option can only be set with the interpolating modes: linear | "
                         f"bilinear | bicubic | trilinear, got mode {mode!r}")
    if antialias:
        raise ValueError(f"{fn}: `antialias=True` is not implemented; resize without it")
    sizes, scales = _output_sizes(input, size, scale_factor, recompute_scale_factor, fn)
    matrices = []
    for n_in, n_out, scale in zip(input.shape[2:], sizes, scales):
        if mode == "bicubic":
            m = _cubic_matrix(n_in, n_out, scale, bool(align_corners))
        elif linear:
            m = _linear_matrix(n_in, n_out, scale, bool(align_corners))
        else:
            m = _nearest_matrix(n_in, n_out, scale, exact=mode == "nearest-exact")
        matrices.append(m.astype(input.dtype))
    return Interpolate.apply(input, matrices=matrices)


def upsample(input: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
             align_corners: bool | None = None) -> Tensor:
    """The older name of `interpolate`."""
    return interpolate(input, size, scale_factor, mode, align_corners)
