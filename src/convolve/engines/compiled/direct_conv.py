"""The direct-convolution engine: Numba-compiled loop nests, no im2col, NCHW in and out.

Forward, per image of a batch chunk: the NCHW image is copied into a zero-bordered channels-last (Hp, Wp, C)
buffer (in cache; this replaces the GEMM engine's whole-batch `pad_into` and its im2col copy), then every block
of P = 4 output pixels x KB = 16 output channels is accumulated in registers: for each kernel row i, one loop over
the kw*C contiguous (j, c) pairs loads 16 filter values (w laid out (kh, kw, C, Kp): two AVX2 vectors) and
broadcasts one input value per pixel, 2*P = 8 vector FMAs per step. Each block is stored into a channels-last
output image buffer, transposed into the NCHW output (+ bias) at the end of the image. Output channels are padded
to a multiple of 16 in the filter layout (zero filters, never stored).

Kernel rows that fall on the zero border are skipped (forward, input and weight gradient), as oneDNN does. The
sums are the same bits, since the skipped products are zeros (but for the sign of a sum that underflows to zero).
An 8x8 image with padding 1 then makes 22 of its 24 kernel-row passes (measured, batch 128, 1 thread, in-process
A/B: 64x8x8 forward 9.9 -> 8.9 ms). So an inf weight in a filter's top row leaves the first output row finite, as
in PyTorch; border columns are not skipped (a block of 4 pixels would have to split).

Backward: the stride-1 input gradient is the same kernel on dY with the spatially flipped, in/out-swapped filters
(padding kh-1-top, ...). With stride s it splits into s*s phases: the input pixels (s*a + ry - top, s*b + rx - left)
get the stride-1 correlation of dY with the flipped taps w[:, :, ry::s, rx::s] (2x2, 2x1, 1x2, 1x1 for a 3x3
kernel at stride 2), written straight into the strided view of dx (no col2im, no zero-inserted dY). At stride 1
each batch chunk computes its dx and then its share of dW, one hand-off to the threads instead of two. A layer with
at most FEW_INPUT_CHANNELS input channels (LeNet's C3) leaves its input gradient to the few-channel NumPy kernel:
it would fill only C of the 16 lanes here.
The weight gradient is accumulated per image
and per tile of output rows as blocks of P = 4 input channels x 16 output channels (x channels-last, dY transposed
to (oh*ow, Kp) per image), summed per batch chunk, the chunks' sums added in chunk order (bit-reproducible for a
given thread count, whichever thread ran a chunk).

The register blocks are written out as scalar accumulators (`_source` generates the loop nests): LLVM's SLP
vectorizer packs them into vector registers (a loop nest over a small accumulator array stays in memory: 3-4
GFLOP/s measured). Numba runs SLP only when `numba.core.config.SLP_VECTORIZE` is set, so the kernels are compiled
explicitly, under Numba's compiler lock, with the flag set for that compilation only; `cache=True` keeps the
machine code across processes (first call: ~25 s per dtype to compile, ~1 s from the cache). `fastmath` is
`contract` only (FMAs): no reassociation, NaN/inf handled as IEEE. Numba is imported on the first call of this
kernel only, never at `import convolve`; without Numba `supports()` is False.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from convolve.engines import compiled
from convolve.engines.kernel import NCHWConv2d
from convolve.engines.small_nchw import small_backward
from convolve.engines.workspace import guided_chunks, run_chunks, sum_over_chunks
from convolve.nn.functional.geometry import Pads, Pair

__all__ = ["DirectConv2d", "direct_backward", "direct_forward"]

KB = 16  # output channels per register block (two 8-float AVX2 vectors)
P_FWD = 4  # output pixels per forward block (2*P accumulators + 2 filter vectors + 1 broadcast <= 16 registers)
P_DW = 4  # input channels per weight-gradient block
DW_TILE_PIXELS = 64  # output pixels per weight-gradient tile (measured: 64 > 128 > whole image on VGG 64x32x32)
# Layout copies (NCHW image <-> channels-last buffer) of images with at most this many channels go row by row,
# others plane by plane (measured, batch 128, 1 thread, in-process A/B: ResNet-20's 16x32x32 layer forward
# 10.6 -> 9.3 ms and backward 21.5 -> 20.0 ms row by row; its 32x16x16 and 64x8x8 layers 7-12% slower).
ROW_FIRST_CHANNELS = 16

_lock = threading.Lock()
_jit: SimpleNamespace | None = None
_ready: set[str] = set()  # dtypes compiled in this process


# ----- generated loop nests ----------------------------------------------------------------------------------
def _fwd_block(p_n: int, ind: str) -> list[str]:
    """One P x KB output block at (k0, oy, ox0): accumulate over (i, j, c), store it into the NHWC image `y`.

    For a kernel row i the (j, c) pairs are contiguous in the channels-last `xp` and in `w` (kh, kw, C, Kp): one
    loop of kw*C steps, the P pixels' loads at fixed offsets o_p = p*s*C from one index.
    """
    lines = [f"a{p}_{k} = zero" for p in range(p_n) for k in range(KB)]
    lines += ["for i in range(i_lo, i_hi):",
              "    xb = u(((oy * s + i) * Wp + ox0 * s) * C)",
              "    wb = u(i * kw * C * Kp + k0)",
              "    for t in range(kw * C):"]
    lines += [f"        w{k} = w[wb + u({k})]" for k in range(KB)]
    lines += [f"        x{p} = xp[xb + o{p}]" for p in range(p_n)]
    lines += [f"        a{p}_{k} += x{p} * w{k}" for p in range(p_n) for k in range(KB)]
    lines += ["        xb += one",
              "        wb += ukp"]
    lines += ["yb = u((oy * ow + ox0) * Kp + k0)"]
    lines += [f"y[yb + u({p * KB + k})] = a{p}_{k}" if p == 0 else f"y[yb + u({p}) * ukp + u({k})] = a{p}_{k}"
              for p in range(p_n) for k in range(KB)]
    return [ind + line for line in lines]


def _dw_block(p_n: int, ind: str) -> list[str]:
    """One P input channels x KB output channels block of dW at (i, j, c0, k0), summed over the output pixels.

    `xp` is the padded image channels-last (Hp, Wp, C): the P channel loads are constant offsets from one index.
    """
    lines = [f"a{p}_{k} = zero" for p in range(p_n) for k in range(KB)]
    lines += ["for oy in range(oy_lo, oy_hi):",
              "    xb = u(((oy * s + i) * Wp + j) * C + c0)",
              "    gb = u(oy * ow * Kp + k0)",
              "    for ox in range(ow):"]
    lines += [f"        g{k} = g[gb + u({k})]" for k in range(KB)]
    lines += [f"        x{p} = xp[xb + u({p})]" for p in range(p_n)]
    lines += [f"        a{p}_{k} += x{p} * g{k}" for p in range(p_n) for k in range(KB)]
    lines += ["        xb += usc",
              "        gb += ukp"]
    lines += [f"dw[u(((i * kw + j) * C + c0 + {p}) * Kp + k0 + {k})] += a{p}_{k}"
              for p in range(p_n) for k in range(KB)]
    return [ind + line for line in lines]


_PROLOGUE = ["    u = np.uint64",
             "    one = u(1)",
             "    hw = u(Hp * Wp)",
             "    ukp = u(Kp)",
             "    usc = u(s * C)",
             "    tmp[0] = 0",
             "    zero = tmp[0]"]


def _source() -> str:
    """The Numba source of the per-image kernels `_gen_fwd_image` and `_gen_dw_image`."""
    src = ["def _gen_fwd_image(xp, w, y, C, Hp, Wp, Kp, kh, kw, oh, ow, s, r0, r1, tmp):",
           "    # xp (Hp*Wp*C,) padded image channels-last, rows r0..r1 the image, the others zero; w (kh*kw*C*Kp,);",
           "    # y (oh*ow*Kp,) output image channels-last",
           *_PROLOGUE,
           *[f"    o{p} = u({p} * s * C)" for p in range(P_FWD)],
           f"    for k0 in range(0, Kp, {KB}):",
           "        for oy in range(oh):",
           "            i_lo, i_hi = max(0, r0 - oy * s), min(kh, r1 - oy * s)  # kernel rows on image rows",
           f"            for blk in range(ow // {P_FWD}):",
           f"                ox0 = blk * {P_FWD}",
           *_fwd_block(P_FWD, " " * 16),
           f"            for ox0 in range(ow - ow % {P_FWD}, ow):",
           *_fwd_block(1, " " * 16),
           ""]
    src += ["def _gen_dw_image(xp, g, dw, C, Hp, Wp, Kp, kh, kw, oy0, oy1, ow, s, r0, r1, tmp):",
            "    # xp (Hp*Wp*C,) padded image channels-last, rows r0..r1 the image; g (oh*ow*Kp,) its dY",
            "    # channels-last; dw (kh*kw*C*Kp,) +=",
            *_PROLOGUE,
            "    for i in range(kh):",
            "        oy_lo, oy_hi = max(oy0, -((i - r0) // s)), min(oy1, -((i - r1) // s))  # oy*s + i on the image",
            "        for j in range(kw):",
            f"            for k0 in range(0, Kp, {KB}):",
            f"                for blk in range(C // {P_DW}):",
            f"                    c0 = blk * {P_DW}",
            *_dw_block(P_DW, " " * 20),
            f"                for c0 in range(C - C % {P_DW}, C):",
            *_dw_block(1, " " * 20)]
    return "\n".join(src) + "\n"


_fwd_image = _dw_image = _to_channels_last = _to_nchw = None  # Numba dispatchers, set by _compile()


def _channels_last_copy(src, dst, top, left, Wp, Cp, row_first):  # pragma: no cover - compiled
    """The (C, H, W) image `src` into the flat channels-last (.., Wp, Cp) buffer `dst` at (top, left), Cp >= C.

    `row_first`: one destination row (all channels) at a time (ROW_FIRST_CHANNELS), else one channel plane at a
    time. Flat unsigned indices: no negative-index checks (measured 1.3-1.8x faster than
    `dst[y, x, c] = src[c, y, x]`).
    """
    C, H, W = src.shape
    u = np.uint64
    flat = src.reshape(C * H * W)
    step = u(Cp)
    for outer in range(H if row_first else C):
        for inner in range(C if row_first else H):
            c, yy = (inner, outer) if row_first else (outer, inner)
            s0 = u((c * H + yy) * W)
            d0 = u(((top + yy) * Wp + left) * Cp + c)
            for xx in range(W):
                dst[d0 + u(xx) * step] = flat[s0 + u(xx)]


def _store_nchw(y, out, bias, has_bias, Kp, row_first):  # pragma: no cover - compiled
    """The channels-last output image y (oh*ow, Kp) into out (K, oh, ow) (+ bias): one output row of every channel
    at a time when `row_first` (ROW_FIRST_CHANNELS), else one channel plane at a time."""
    K, oh, ow = out.shape
    u = np.uint64
    uow, ukp = u(ow), u(Kp)
    for outer in range(oh if row_first else K):
        for inner in range(K if row_first else oh):
            k, yy = (inner, outer) if row_first else (outer, inner)
            row = out[k, yy]
            src = y[u(yy * ow * Kp + k):]
            if has_bias:
                bk = bias[k]
                for xx in range(uow):
                    row[xx] = src[xx * ukp] + bk
            else:
                for xx in range(uow):
                    row[xx] = src[xx * ukp]


def _fwd_chunk(x, w, out, bias, has_bias, top, left, Kp, kh, kw, s, xp, y, tmp, row_channels):  # pragma: no cover
    """Forward of a batch chunk x (n, C, H, W) -> out (n, K, oh, ow) (NCHW, or a strided view: a phase of dx)
    through the channels-last image buffers xp (Hp, Wp, C) (zero borders) and y (oh*ow*Kp,); the layout copies go
    row by row for images of at most `row_channels` channels."""
    n, C, H = x.shape[0], x.shape[1], x.shape[2]
    oh, ow = out.shape[2], out.shape[3]
    Hp, Wp = xp.shape[0], xp.shape[1]
    flat = xp.reshape(Hp * Wp * C)
    for b in range(n):
        _to_channels_last(x[b], flat, top, left, Wp, C, row_channels >= C)
        _fwd_image(flat, w, y, C, Hp, Wp, Kp, kh, kw, oh, ow, s, top, top + H, tmp)
        _to_nchw(y, out[b], bias, has_bias, Kp, row_channels >= Kp)


def _dw_chunk(x, grad, dw, top, left, Kp, kh, kw, s, rows, xp, g, tmp, row_channels):  # pragma: no cover - compiled
    """dW += the weight gradient of a chunk; xp (Hp, Wp, C) zero-bordered buffer, g (oh*ow*Kp,) buffer."""
    n, C, H = x.shape[0], x.shape[1], x.shape[2]
    oh, ow = grad.shape[2], grad.shape[3]
    Hp, Wp = xp.shape[0], xp.shape[1]
    flat = xp.reshape(Hp * Wp * C)
    for b in range(n):
        _to_channels_last(x[b], flat, top, left, Wp, C, row_channels >= C)
        # dY (K, oh, ow) -> (oh*ow, Kp); columns K..Kp stay zero
        _to_channels_last(grad[b], g, 0, 0, ow, Kp, row_channels >= Kp)
        for oy0 in range(0, oh, rows):  # output-row tiles: x and dY rows of a tile stay in L1 across the blocks
            _dw_image(flat, g, dw, C, Hp, Wp, Kp, kh, kw, oy0, min(oh, oy0 + rows), ow, s, top, top + H, tmp)


def _compile() -> SimpleNamespace:
    """Build the Numba functions (imports Numba): the generated per-image kernels and the per-chunk drivers."""
    from numba import njit

    flags = {"nogil": True, "cache": True, "fastmath": {"contract"}}  # contract: FMAs; no reassociation, NaN/inf kept
    space: dict[str, Any] = globals()  # module-level functions of this file: Numba can cache them
    exec(compile(_source(), __file__, "exec"), space)
    for name in ("_fwd_image", "_dw_image"):
        space[name] = njit(**flags)(space["_gen" + name])
    space["_to_channels_last"] = njit(**flags)(_channels_last_copy)
    space["_to_nchw"] = njit(**flags)(_store_nchw)
    return SimpleNamespace(fwd_chunk=njit(**flags)(_fwd_chunk), dw_chunk=njit(**flags)(_dw_chunk))


def _kernels(dtype: np.dtype) -> SimpleNamespace:
    """The compiled functions for `dtype`; the first call per dtype compiles (or loads the cache) with SLP on."""
    global _jit
    name = np.dtype(dtype).name
    if _jit is not None and name in _ready:
        return _jit
    with _lock:
        from numba.core import config
        from numba.core.compiler_lock import global_compiler_lock

        if _jit is None:
            _jit = _compile()
        if name not in _ready:
            with global_compiler_lock:  # no other compilation sees the flag
                previous = config.SLP_VECTORIZE
                config.SLP_VECTORIZE = 1
                try:
                    _warm(_jit, np.dtype(dtype))
                finally:
                    config.SLP_VECTORIZE = previous
            _ready.add(name)
    return _jit


def _warm(jit: SimpleNamespace, dtype: np.dtype) -> None:
    """Compile every signature the engine calls, on tiny arrays of `dtype`."""
    x = np.zeros((1, 1, 3, 3), dtype)
    xp = np.zeros((5, 5, 1), dtype)
    w = np.zeros(9 * KB, dtype)
    tmp = np.zeros(P_FWD * KB + P_DW * KB, dtype)
    for out in (np.zeros((1, 1, 3, 3), dtype), np.zeros((1, 1, 6, 6), dtype)[:, :, ::2, ::2]):  # NCHW, a phase of dx
        jit.fwd_chunk(x, w, out, np.zeros(1, dtype), False, 1, 1, KB, 3, 3, 1, xp, np.zeros(9 * KB, dtype), tmp,
                      ROW_FIRST_CHANNELS)
    jit.dw_chunk(x, np.zeros((1, 1, 3, 3), dtype), np.zeros(9 * KB, dtype), 1, 1, KB, 3, 3, 1, 1, xp,
                 np.zeros(9 * KB, dtype), tmp, ROW_FIRST_CHANNELS)


# ----- the engine functions ----------------------------------------------------------------------------------
def _padded_k(k: int) -> int:
    return -(-k // KB) * KB


def _filters(weight: np.ndarray) -> np.ndarray:
    """(K, C, kh, kw) -> flat (kh, kw, C, Kp), output channels zero-padded to a multiple of KB."""
    k, c, kh, kw = weight.shape
    w = np.zeros((kh, kw, c, _padded_k(k)), dtype=weight.dtype)
    w[..., :k] = weight.transpose(2, 3, 1, 0)
    return w.reshape(-1)


def _fwd_buffers(x_shape: tuple[int, ...], out_shape: tuple[int, ...], kernel: Pair, stride: int, top_left: Pair,
                 dtype: np.dtype) -> SimpleNamespace:
    """One thread's forward buffers: the zero-bordered channels-last image xp (Hp, Wp, C), large enough for x
    placed at `top_left` and for every window of the output, and the channels-last output image y (oh*ow*Kp,)."""
    _, c, h, w = x_shape
    k, oh, ow = out_shape[1:]
    hp, wp = max(h + top_left[0], (oh - 1) * stride + kernel[0]), max(w + top_left[1], (ow - 1) * stride + kernel[1])
    return SimpleNamespace(xp=np.zeros((hp, wp, c), dtype), y=np.zeros(oh * ow * _padded_k(k), dtype),
                           tmp=np.zeros(KB, dtype))


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int, top_left: Pair,
          out: np.ndarray) -> None:
    """out (N, K, oh, ow) = direct correlation of x (N, C, H, W) with weight (K, C, kh, kw), x zero-padded by
    `top_left` before and as much as the windows of `out` need after."""
    jit = _kernels(x.dtype)
    x = np.ascontiguousarray(x)
    k, _, kh, kw = weight.shape
    top, left = top_left
    w = _filters(weight)
    b = np.zeros(1, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)

    def task(chunk: slice, ws: SimpleNamespace) -> None:
        jit.fwd_chunk(x[chunk], w, out[chunk], b, bias is not None, top, left, kp, kh, kw, stride, ws.xp, ws.y,
                      ws.tmp, ROW_FIRST_CHANNELS)

    def make() -> SimpleNamespace:
        return _fwd_buffers(x.shape, out.shape, (kh, kw), stride, top_left, x.dtype)

    kp = _padded_k(k)
    run_chunks(task, guided_chunks(x.shape[0]), make, first_come=True)  # disjoint outputs: any free thread


def direct_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, dilation: Pair,
                   padding: Pads, out: np.ndarray) -> None:
    """Fill the NCHW `out` with conv2d(x, weight) + bias (square stride, dilation 1, groups 1)."""
    _conv(x, weight, bias, stride[0], (padding[0][0], padding[1][0]), out)


def _dw_setup(x: np.ndarray, grad: np.ndarray, weight_shape: tuple[int, ...], pads: Pads
              ) -> tuple[tuple[int, ...], int, Callable[[], SimpleNamespace]]:
    """The weight gradient's partial-sum shape (kh, kw, C, Kp) flat, output rows per tile, and its buffers."""
    _, c, h, w_ = x.shape
    k, _, kh, kw = weight_shape
    oh, ow = grad.shape[2:]
    kp = _padded_k(k)
    (top, bottom), (left, right) = pads
    return (kh * kw * c * kp,), max(1, DW_TILE_PIXELS // ow), lambda: SimpleNamespace(
        xp=np.zeros((h + top + bottom, w_ + left + right, c), x.dtype), g=np.zeros(oh * ow * kp, x.dtype),
        tmp=np.zeros(P_DW * KB, x.dtype))


def _dw_from_sum(acc: np.ndarray, weight_shape: tuple[int, ...]) -> np.ndarray:
    """The summed (kh, kw, C, Kp) blocks as dW (K, C, kh, kw)."""
    k, c, kh, kw = weight_shape
    return np.ascontiguousarray(acc.reshape(kh, kw, c, _padded_k(k))[..., :k].transpose(3, 2, 0, 1))


def direct_weight_grad(x: np.ndarray, grad: np.ndarray, weight_shape: tuple[int, ...], stride: int,
                       pads: Pads) -> np.ndarray:
    """dW (K, C, kh, kw): per-image blocks summed per chunk, the chunks' sums added in chunk order."""
    jit = _kernels(x.dtype)
    x, grad = np.ascontiguousarray(x), np.ascontiguousarray(grad)
    k, _, kh, kw = weight_shape
    (top, _), (left, _) = pads
    shape, rows, make = _dw_setup(x, grad, weight_shape, pads)

    def task(chunk: slice, acc: np.ndarray, ws: SimpleNamespace) -> None:
        jit.dw_chunk(x[chunk], grad[chunk], acc, top, left, _padded_k(k), kh, kw, stride, rows, ws.xp, ws.g, ws.tmp,
                     ROW_FIRST_CHANNELS)

    return _dw_from_sum(sum_over_chunks(task, guided_chunks(x.shape[0]), make, shape, x.dtype), weight_shape)


def _stride1_input_grad_filters(weight: np.ndarray, padding: Pads) -> tuple[np.ndarray, Pair]:
    """The stride-1 input gradient as a direct correlation of dY: the flipped, in/out-swapped filters in the
    kernel's layout, and dY's padding before (kh - 1 - top, kw - 1 - left)."""
    _, _, kh, kw = weight.shape
    (top, _), (left, _) = padding
    taps = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, K, kh, kw)
    return _filters(taps), (kh - 1 - top, kw - 1 - left)


def _stride1_backward(x: np.ndarray, grad: np.ndarray, weight: np.ndarray, padding: Pads,
                      dx: np.ndarray) -> np.ndarray:
    """dx (filled) and dW (returned) of a stride-1 layer in one pass over the batch chunks: a chunk's dY is read for
    its input gradient and then, still in cache, for its share of the weight gradient, and the threads take one
    hand-off instead of two. The same arithmetic, in the same order, as `_input_grad` then `direct_weight_grad`."""
    jit = _kernels(x.dtype)
    x, grad = np.ascontiguousarray(x), np.ascontiguousarray(grad)
    n, c = x.shape[:2]
    k, _, kh, kw = weight.shape
    (top, _), (left, _) = padding
    w_dx, (pad_y, pad_x) = _stride1_input_grad_filters(weight, padding)
    cp = _padded_k(c)
    shape, rows, make_dw = _dw_setup(x, grad, weight.shape, padding)
    no_bias = np.zeros(1, x.dtype)

    def make() -> SimpleNamespace:
        ws = make_dw()  # the weight gradient's buffers, and the input gradient's: dY padded, dx image
        dx_side = _fwd_buffers(grad.shape, dx.shape, (kh, kw), 1, (pad_y, pad_x), x.dtype)
        ws.gp, ws.y = dx_side.xp, dx_side.y
        return ws

    def task(chunk: slice, acc: np.ndarray, ws: SimpleNamespace) -> None:
        jit.fwd_chunk(grad[chunk], w_dx, dx[chunk], no_bias, False, pad_y, pad_x, cp, kh, kw, 1, ws.gp, ws.y, ws.tmp,
                      ROW_FIRST_CHANNELS)
        jit.dw_chunk(x[chunk], grad[chunk], acc, top, left, _padded_k(k), kh, kw, 1, rows, ws.xp, ws.g, ws.tmp,
                     ROW_FIRST_CHANNELS)

    return _dw_from_sum(sum_over_chunks(task, guided_chunks(n), make, shape, x.dtype), weight.shape)


def _input_grad(grad: np.ndarray, weight: np.ndarray, stride: int, padding: Pads, dx: np.ndarray) -> None:
    """dx (N, C, H, W): for each phase (ry, rx) of the stride, dx[:, :, s*a + ry - top, s*b + rx - left] is the
    stride-1 correlation of dY (padded by taps - 1 before) with the flipped taps w[:, :, ry::s, rx::s], in/out
    swapped; stride 1 is the single phase (the full convolution with the flipped filters)."""
    _, _, kh, kw = weight.shape
    (top, _), (left, _) = padding
    axes = []
    for size, kk, before in zip(dx.shape[2:], (kh, kw), (top, left)):
        phases = []
        for r in range(stride):  # phase r: padded positions s*a + r, a from a_min to a_max inside the input
            a_min, a_max = max(0, -(-(before - r) // stride)), (size - 1 + before - r) // stride
            phases.append((r, len(range(r, kk, stride)), a_min, a_max, stride * a_min + r - before))
        axes.append(phases)
    for ry, taps_y, ay, ay_max, y0 in axes[0]:
        for rx, taps_x, ax, ax_max, x0 in axes[1]:
            if ay_max < ay or ax_max < ax:
                continue
            target = dx[:, :, y0::stride, x0::stride][:, :, :ay_max - ay + 1, :ax_max - ax + 1]
            if taps_y == 0 or taps_x == 0:  # no filter tap reaches this phase (kernel smaller than the stride)
                target[...] = 0
                continue
            taps = weight[:, :, ry::stride, rx::stride][:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, K, ty, tx)
            # output a' is phase row a_min + a': dY padded by taps - 1 - a_min before (cropped when that is < 0)
            pad_y, pad_x = taps_y - 1 - ay, taps_x - 1 - ax
            src = grad[:, :, max(0, -pad_y):, max(0, -pad_x):]
            _conv(src, np.ascontiguousarray(taps), None, 1, (max(0, pad_y), max(0, pad_x)), target)


# The input gradient of a layer with at most this many input channels (LeNet-5's C3: 6) goes to the few-channel
# NumPy kernel: as a direct convolution it would fill only C of the 16 lanes of each block (measured on C3,
# batch 128, 1 thread: 2.6 ms there vs 5.7 ms here).
FEW_INPUT_CHANNELS = 8

# A stride-1 layer's input and weight gradients run in one pass over the chunks (`_stride1_backward`); measured
# (batch 128, in-process alternating, median of 15) on ResNet-20's layers at 1 / 2 threads: 16x32x32 18.3 -> 18.2 /
# 9.8 -> 9.7 ms, 32x16x16 16.5 -> 16.4 / 9.1 -> 8.7 ms, 64x8x8 18.7 -> 18.5 / 10.8 -> 10.2 ms.
FUSED_STRIDE1_BACKWARD = True


def direct_backward(x: np.ndarray, grad: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair,
                    padding: Pads, dx: np.ndarray | None, need_w: bool) -> np.ndarray | None:
    """Fill dx (N, C, H, W) if given; return dW (K, C, kh, kw) if `need_w`."""
    if dx is not None and weight.shape[1] <= FEW_INPUT_CHANNELS:
        small_backward(x, grad, weight, stride, dilation, padding, dx, need_w=False)
    elif dx is not None and need_w and stride[0] == 1 and FUSED_STRIDE1_BACKWARD:
        return _stride1_backward(x, grad, weight, padding, dx)
    elif dx is not None:
        _input_grad(grad, weight, stride[0], padding, dx)
    return direct_weight_grad(x, grad, weight.shape, stride[0], padding) if need_w else None


class DirectConv2d(NCHWConv2d):
    """conv2d as a Numba direct convolution: ungrouped, dilation 1, square stride, padding within the kernel."""

    @staticmethod
    def supports(x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair, groups: int) -> bool:
        kernel = tuple(weight.shape[2:])
        return (groups == 1 and dilation == (1, 1) and stride[0] == stride[1] and len(kernel) == 2
                and x.dtype in (np.float32, np.float64) and weight.dtype == x.dtype
                and all(0 <= lo < kk and 0 <= hi < kk for (lo, hi), kk in zip(padding, kernel))
                and compiled.available())

    @staticmethod
    def prefers(x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair,  # type: ignore[override]
                groups: int) -> bool:
        """float32 layers measured faster than the fast engine's current kernel (GemmConv2d; SmallConv2d for C3).

        benchmarks/bench_direct_conv.py, batch 128, 1 thread, alternating, min of 7, shared machine (03:42 run; the
        ranges are over the 4 runs since the last kernel change), ms fast-engine kernel -> direct, fwd / dx / dw:
          16x32x32->16      21.2 / 20.1 / 26.1 -> 10.6 / 11.5 / 11.8   (1.7-2.2x)
          16x32x32->32 /2   16.6 / 24.4 / 14.6 ->  7.1 / 12.8 /  7.1   (1.1-2.3x)
          32x16x16->32      14.3 / 14.4 / 15.4 ->  9.3 / 11.2 /  9.0   (1.2-1.7x)
          32x16x16->64 /2    6.3 / 10.7 /  5.5 ->  5.9 /  6.7 /  5.5   (1.0-1.6x)
          VGG 64x32x32->64   218 /  215 /  221 ->  178 /  160 /  158   (1.2-1.5x)
          LeNet C3 6->16 5x5 (SmallConv2d) 2.8 / 8.4 / 4.1 -> 1.4 / 6.7 / 2.3   (1.2-2.0x; dx now stays on
                                           SmallConv2d: FEW_INPUT_CHANNELS)
        64x8x8->64 since the border rows are skipped (forward + backward through autograd, in-process alternating,
        medians of 10-14, 1 / 2 threads: GemmConv2d 32.3 / 18.4 ms -> 29.4 / 16.7 ms; the ResNet-20 step, 10 and 24
        alternating steps: 684 -> 629 ms / 375 -> 346 ms; before the skip it was even).
        Not preferred: inputs of at most 2^17 values (`compiled.pays_for_values`), images under 16x16 other than the
        64-channel 8x8 layers (not measured; the digits job's 16 -> 32 8x8 layer stays on NumPy), 1x1 layers
        (SmallConv2d: 0.7-1.3x), 128 channels (Winograd: 0.52-0.68x), float64 (16 doubles per block spill; not
        measured), channel counts that are not multiples of 16 (padded filters waste FMAs), images above 32x32 (not
        measured).
        """
        c, k = x.shape[1], weight.shape[0]
        kernel, pixels = tuple(weight.shape[2:]), x.shape[2] * x.shape[3]
        if x.dtype != np.float32 or pixels > 32 * 32 or not compiled.pays_for_values(math.prod(x.shape), x.dtype):
            return False  # 2^17 values or fewer stay on NumPy, as for every compiled kernel (no Numba for small jobs)
        if kernel == (3, 3):  # images under 16x16: only the measured 64-channel 8x8 layers
            return (stride in ((1, 1), (2, 2)) and c % KB == 0 and k % KB == 0 and max(c, k) <= 64
                    and (pixels >= 16 * 16 or (pixels >= 8 * 8 and min(c, k) == 64)))
        return kernel == (5, 5) and stride == (1, 1) and c <= 8 and k == KB  # LeNet-5's C3

    fill_forward = staticmethod(direct_forward)
    fill_backward = staticmethod(direct_backward)
