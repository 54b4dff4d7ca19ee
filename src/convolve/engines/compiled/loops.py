"""The compiled loops of the "fast" engine: one pass over memory where NumPy needs several.

Every loop is `@njit(nogil=True, cache=True)` and works on a range of its output (a slice of elements, of
channels or of planes) that no other range touches, so the kernels run the ranges on convolve's own threads
(`compiled.run_ranges`): no second thread pool, `set_num_threads` keeps its meaning, and the result does not
depend on which thread ran a range. Compiled code is cached on disk next to this file (or in Numba's user cache
directory when the package folder is read-only).

Reductions accumulate in float64 (PyTorch accumulates batch statistics in double too) with
`fastmath={"reassoc"}` only: LLVM may then vectorise a sum (its order is fixed by the compiled code, so the
result is still deterministic), while NaN/inf keep IEEE semantics.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_REASSOC = {"reassoc"}


# ----- ReLU -------------------------------------------------------------------------------------------------
# Loops run over slices with an unsigned counter: `for i in range(start, stop)` on the whole array kept LLVM
# from vectorising (negative-index wraparound checks): ReLU backward took 15 ms instead of 0.8 at 2M values.
@njit(nogil=True, cache=True)
def relu_forward(x: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
    """out[i] = max(x[i], 0) over flat [start, stop); NaN stays NaN (as np.maximum and PyTorch)."""
    zero = x.dtype.type(0)
    xs, outs = x[start:stop], out[start:stop]
    for i in range(np.uint64(xs.shape[0])):
        v = xs[i]
        outs[i] = zero if v < zero else v


@njit(nogil=True, cache=True)
def relu_backward(grad: np.ndarray, out: np.ndarray, gx: np.ndarray, start: int, stop: int) -> None:
    """gx[i] = grad[i] where the ReLU output was > 0, else 0 (the derivative at 0 is 0, as PyTorch)."""
    zero = grad.dtype.type(0)
    gs, outs, gxs = grad[start:stop], out[start:stop], gx[start:stop]
    for i in range(np.uint64(gs.shape[0])):
        gxs[i] = gs[i] if outs[i] > zero else zero


# ----- tanh (float32) ----------------------------------------------------------------------------------------
# tanh(x) = x P(s) / Q(s), s = x^2 / 100, for |x| <= 10 (beyond, float32 tanh is +-1): a rational fit of degree
# (5, 5) in s with a relative error under 1.5e-10 on (0, 10], evaluated in float64 and rounded once to float32.
# Checked against the float64 libm tanh rounded to float32 on every positive float32 up to 10.5 (1.09e9 values):
# all within 1 ulp, 86,570 of them (0.008%) 1 ulp off. Only multiplies, adds and one division, so LLVM vectorises
# it (NumPy's float32 tanh runs as a scalar loop here: ~4 ns per value).
_TANH_LIMIT = 10.0
_TANH_P = (0.9999999999588068, 14.064680378512938, 43.79999583589056, 41.09584669560486, 10.450030447784512,
           0.32676325753050883)
_TANH_Q = (1.0, 47.39801362528921, 290.4004670710075, 492.01250775408005, 249.4993449288632, 27.062837183724987)


@njit(nogil=True, cache=True, fastmath={"contract"}, error_model="numpy")  # numpy: no zero-division check
def tanh_forward_f32(x: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
    """out[i] = tanh(x[i]) over flat [start, stop) for float32 arrays (NaN stays NaN, +-inf gives +-1, -0 gives -0)."""
    p0, p1, p2, p3, p4, p5 = _TANH_P
    q1, q2, q3, q4, q5 = _TANH_Q[1:]
    scale = 1.0 / (_TANH_LIMIT * _TANH_LIMIT)
    xs, outs = x[start:stop], out[start:stop]
    for i in range(np.uint64(xs.shape[0])):
        v = np.float64(xs[i])
        v = _TANH_LIMIT if v > _TANH_LIMIT else v  # comparisons are False for NaN: it passes through
        v = -_TANH_LIMIT if v < -_TANH_LIMIT else v
        z = v * v * scale
        num = ((((p5 * z + p4) * z + p3) * z + p2) * z + p1) * z + p0
        den = ((((q5 * z + q4) * z + q3) * z + q2) * z + q1) * z + 1.0
        outs[i] = np.float32(v * num / den)


@njit(nogil=True, cache=True)
def tanh_backward(grad: np.ndarray, out: np.ndarray, gx: np.ndarray, start: int, stop: int) -> None:
    """gx[i] = grad[i] * (1 - out[i]^2) over flat [start, stop): one pass (NumPy: square, subtract, multiply)."""
    one = grad.dtype.type(1)
    gs, outs, gxs = grad[start:stop], out[start:stop], gx[start:stop]
    for i in range(np.uint64(gs.shape[0])):
        t = outs[i]
        gxs[i] = gs[i] * (one - t * t)


# ----- batch norm (training statistics), per channel ----------------------------------------------------------
@njit(nogil=True, cache=True, fastmath=_REASSOC)
def _row_sum(row: np.ndarray) -> float:
    s = 0.0
    for i in range(np.uint64(row.shape[0])):
        s += np.float64(row[i])
    return s


@njit(nogil=True, cache=True, fastmath=_REASSOC)
def _row_centred_square_sum(row: np.ndarray, mean: float) -> float:
    s = 0.0
    for i in range(np.uint64(row.shape[0])):
        d = np.float64(row[i] - mean)
        s += d * d
    return s


@njit(nogil=True, cache=True, fastmath=_REASSOC)
def _row_dot_centred(g: np.ndarray, x: np.ndarray, mean: float) -> float:
    s = 0.0
    for i in range(np.uint64(x.shape[0])):
        s += np.float64(g[i]) * np.float64(x[i] - mean)
    return s


@njit(nogil=True, cache=True)
def batch_norm_forward(x3: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float, out: np.ndarray,
                       mean: np.ndarray, var: np.ndarray, inv_std: np.ndarray, c0: int, c1: int) -> None:
    """Channels [c0, c1) of (N, C, L) x3: mean, biased var (centred, two-pass) and inv_std into the (C,)
    outputs, then out = (x - mean) * (weight * inv_std) + bias: 3 passes (the reference makes 5)."""
    n, _, length = x3.shape
    one = x3.dtype.type(1)
    count = x3.dtype.type(n * length)
    for c in range(c0, c1):
        total = 0.0
        for i in range(n):
            total += _row_sum(x3[i, c])
        m = x3.dtype.type(total) / count
        squares = 0.0
        for i in range(n):
            squares += _row_centred_square_sum(x3[i, c], m)
        v = x3.dtype.type(squares) / count
        r = one / np.sqrt(v + x3.dtype.type(eps))
        mean[c], var[c], inv_std[c] = m, v, r
        a, b = weight[c] * r, bias[c]
        for i in range(n):
            row, out_row = x3[i, c], out[i, c]
            for j in range(np.uint64(length)):
                out_row[j] = (row[j] - m) * a + b


@njit(nogil=True, cache=True)
def batch_norm_backward(x3: np.ndarray, g3: np.ndarray, mean: np.ndarray, inv_std: np.ndarray, scale: np.ndarray,
                        gx: np.ndarray, sum_dy: np.ndarray, dot: np.ndarray, c0: int, c1: int) -> None:
    """Channels [c0, c1): sum(dy), sum(dy * (x - mean)) and, when gx is not empty,
    gx = scale * (dy - sum(dy)/m - (x - mean) * inv_std^2 * dot/m): 2 passes (the reference makes 6)."""
    n, _, length = x3.shape
    count = x3.dtype.type(n * length)
    for c in range(c0, c1):
        m = mean[c]
        s_dy, s_dot = 0.0, 0.0
        for i in range(n):
            s_dy += _row_sum(g3[i, c])
            s_dot += _row_dot_centred(g3[i, c], x3[i, c], m)
        sd, dt = x3.dtype.type(s_dy), x3.dtype.type(s_dot)
        sum_dy[c], dot[c] = sd, dt
        if gx.size == 0:
            continue
        k = -(inv_std[c] * inv_std[c]) * dt / count
        shift = -sd / count
        f = scale[c]
        for i in range(n):
            row, g_row, gx_row = x3[i, c], g3[i, c], gx[i, c]
            for j in range(np.uint64(length)):
                gx_row[j] = (g_row[j] + k * (row[j] - m) + shift) * f


# ----- max pooling over (P, H, W) planes ----------------------------------------------------------------------
@njit(nogil=True, cache=True, fastmath=_REASSOC)
def planes_have_nan(x: np.ndarray, p0: int, p1: int) -> bool:
    """Whether planes [p0, p1) of (P, H, W) x hold a NaN (or an inf - inf: then the exact path runs too)."""
    flat = x[p0:p1].reshape(-1)
    s = x.dtype.type(0)
    for i in range(np.uint64(flat.shape[0])):
        s += flat[i]
    return s != s


@njit(nogil=True, cache=True)
def max_pool_2x2_forward(x: np.ndarray, y: np.ndarray, arg: np.ndarray, p0: int, p1: int) -> None:
    """2x2 windows, stride 2, no padding, on NaN-free planes [p0, p1): y = the window's maximum, arg = the flat
    H*W index of its first occurrence in row-major order. Straight-line code over four taps compiles to selects:
    ~15x faster than the general loop nest below (whose NaN rule and window bounds keep it branchy)."""
    w = x.shape[2]
    oh, ow = y.shape[1], y.shape[2]
    for p in range(p0, p1):
        plane, y_plane, arg_plane = x[p], y[p], arg[p]
        for oy in range(oh):
            top, bottom = plane[2 * oy], plane[2 * oy + 1]
            y_row, arg_row = y_plane[oy], arg_plane[oy]
            for ox in range(np.uint64(ow)):
                best, where = top[2 * ox], 0
                v = top[2 * ox + 1]
                if v > best:
                    best, where = v, 1
                v = bottom[2 * ox]
                if v > best:
                    best, where = v, w
                v = bottom[2 * ox + 1]
                if v > best:
                    best, where = v, w + 1
                y_row[ox] = best
                arg_row[ox] = 2 * oy * w + 2 * ox + where


@njit(nogil=True, cache=True)
def max_pool_forward(x: np.ndarray, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple,
                     y: np.ndarray, arg: np.ndarray, p0: int, p1: int) -> None:
    """Planes [p0, p1) of (P, H, W) x: y = max over each window's in-bounds taps and arg = its flat H*W index,
    by PyTorch's scan (first maximum in row-major order, a NaN always wins; a window of padding only gives -inf
    at its first in-bounds tap). Out-of-bounds taps are the -inf padding, so they are skipped."""
    _, h, w = x.shape
    _, oh, ow = y.shape
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    for p in range(p0, p1):
        for oy in range(oh):
            y0 = oy * sh - ph
            a0 = 0
            while y0 + a0 * dh < 0:
                a0 += 1
            for ox in range(ow):
                x0 = ox * sw - pw
                b0 = 0
                while x0 + b0 * dw < 0:
                    b0 += 1
                best = -np.inf
                where = (y0 + a0 * dh) * w + x0 + b0 * dw
                for a in range(a0, kh):
                    yy = y0 + a * dh
                    if yy >= h:
                        break
                    for b in range(b0, kw):
                        xx = x0 + b * dw
                        if xx >= w:
                            break
                        v = x[p, yy, xx]
                        if v > best or np.isnan(v):
                            best = v
                            where = yy * w + xx
                y[p, oy, ox] = best
                arg[p, oy, ox] = where


@njit(nogil=True, cache=True)
def max_pool_backward(grad: np.ndarray, arg: np.ndarray, gx: np.ndarray, p0: int, p1: int) -> None:
    """Planes [p0, p1): gx (P, H*W) = 0, then each window's gradient added at its arg-max (windows may overlap)."""
    _, oh, ow = grad.shape
    zero = gx.dtype.type(0)
    for p in range(p0, p1):
        g_plane, grad_plane, arg_plane = gx[p], grad[p], arg[p]
        for i in range(np.uint64(g_plane.shape[0])):
            g_plane[i] = zero
        for oy in range(oh):
            grad_row, arg_row = grad_plane[oy], arg_plane[oy]
            for ox in range(ow):
                g_plane[arg_row[ox]] += grad_row[ox]


@njit(nogil=True, cache=True)
def avg_pool_2x2_forward(x: np.ndarray, divisor: float, y: np.ndarray, p0: int, p1: int) -> None:
    """2x2 windows, stride 2, no padding, planes [p0, p1): y = ((x00 + x10) + (x01 + x11)) / divisor, the
    reference's order (rows first, then columns), so the result is the same to the bit."""
    oh, ow = y.shape[1], y.shape[2]
    d = x.dtype.type(divisor)
    for p in range(p0, p1):
        plane, y_plane = x[p], y[p]
        for oy in range(oh):
            top, bottom, y_row = plane[2 * oy], plane[2 * oy + 1], y_plane[oy]
            for ox in range(np.uint64(ow)):
                y_row[ox] = ((top[2 * ox] + bottom[2 * ox]) + (top[2 * ox + 1] + bottom[2 * ox + 1])) / d


@njit(nogil=True, cache=True)
def avg_pool_2x2_backward(grad: np.ndarray, divisor: float, gx: np.ndarray, p0: int, p1: int) -> None:
    """Planes [p0, p1) of gx (P, 2*oh, 2*ow): each window's four inputs get grad / divisor."""
    oh, ow = grad.shape[1], grad.shape[2]
    d = gx.dtype.type(divisor)
    for p in range(p0, p1):
        g_plane, gx_plane = grad[p], gx[p]
        for oy in range(oh):
            top, bottom, g_row = gx_plane[2 * oy], gx_plane[2 * oy + 1], g_plane[oy]
            for ox in range(np.uint64(ow)):
                v = g_row[ox] / d
                top[2 * ox] = v
                top[2 * ox + 1] = v
                bottom[2 * ox] = v
                bottom[2 * ox + 1] = v


# ----- col2im: the adjoint of the convolutions' column matrices ---------------------------------------------
# NumPy adds each kernel tap's (n, oh, ow, C) slice with one strided `+=`, whose innermost runs are only C (or
# ow) values long: 4-6x slower than these loops. The taps are added in the same order (i, j outermost) onto a
# zeroed buffer, so every sum is the same sequence of float operations: the result equals NumPy's bit for bit.
@njit(nogil=True, cache=True)
def col2im_nhwc_add(dcols: np.ndarray, xp: np.ndarray, sh: int, sw: int, dh: int, dw: int) -> None:
    """xp (n, Hp, Wp, C) += the columns dcols (n, oh, ow, kh, kw, C) scattered back to the pixels they came from."""
    m, oh, ow, kh, kw, c = dcols.shape
    for b in range(m):
        plane = xp[b]
        for i in range(kh):
            for j in range(kw):
                for oy in range(oh):
                    row, src_row = plane[oy * sh + i * dh], dcols[b, oy]
                    for ox in range(ow):
                        dst, src = row[ox * sw + j * dw], src_row[ox, i, j]
                        for q in range(np.uint64(c)):
                            dst[q] += src[q]


@njit(nogil=True, cache=True)
def col2im_nchw_add(dcols: np.ndarray, xp: np.ndarray, sh: int, sw: int, dh: int, dw: int) -> None:
    """xp (n, C, Hp, Wp) += the columns dcols (n, C, kh, kw, oh, ow) scattered back to their pixels."""
    m, c, kh, kw, oh, ow = dcols.shape
    for b in range(m):
        for ch in range(c):
            plane = xp[b, ch]
            for i in range(kh):
                for j in range(kw):
                    src = dcols[b, ch, i, j]
                    for oy in range(oh):
                        row, src_row = plane[oy * sh + i * dh], src[oy]
                        if sw == 1:
                            dst = row[j * dw: j * dw + ow]
                            for ox in range(np.uint64(ow)):
                                dst[ox] += src_row[ox]
                        else:
                            for ox in range(ow):
                                row[ox * sw + j * dw] += src_row[ox]
