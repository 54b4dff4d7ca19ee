"""The direct-convolution engine: Numba-compiled loop nests, no im2col, NCHW in and out.

Forward, per image of a batch chunk: the NCHW image is copied into a zero-bordered channels-last (Hp, Wp, C)
buffer (in cache; this replaces the GEMM engine's whole-batch `pad_into` and its im2col copy), then every block
of P = 4 output pixels x KB = 16 output channels is accumulated in registers: for each kernel row i, one loop over
the kw*C contiguous (j, c) pairs loads 16 filter values (w laid out (kh, kw, C, Kp): two AVX2 vectors) and
broadcasts one input value per pixel, 2*P = 8 vector FMAs per step. Each block is stored into a channels-last
output image buffer, transposed into the NCHW output (+ bias) at the end of the image. Output channels are padded
to a multiple of 16 in the filter layout (zero filters, never stored).

Backward: the stride-1 input gradient is the same kernel on dY with the spatially flipped, in/out-swapped filters
(padding kh-1-top, ...); other strides use the GEMM engine's col2im. The weight gradient is accumulated per image
and per tile of output rows as blocks of P = 4 input channels x 16 output channels (x channels-last, dY transposed
to (oh*ow, Kp) per image), summed per thread, the threads' sums added in a fixed order (bit-reproducible for a
given thread count).

The register blocks are written out as scalar accumulators (`_source` generates the loop nests): LLVM's SLP
vectorizer packs them into vector registers (a loop nest over a small accumulator array stays in memory: 3-4
GFLOP/s measured). Numba runs SLP only when `numba.core.config.SLP_VECTORIZE` is set, so the kernels are compiled
explicitly, under Numba's compiler lock, with the flag set for that compilation only; `cache=True` keeps the
machine code across processes (first call: ~25 s per dtype to compile, ~1 s from the cache). `fastmath` is
`contract` only (FMAs): no reassociation, NaN/inf handled as IEEE. Numba is imported on the first call of this
kernel only, never at `import convolve`; without Numba `supports()` is False.
"""

from __future__ import annotations

import importlib.util
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np

from convolve.engines.kernel import NCHWConv2d
from convolve.engines.workspace import run_chunks
from convolve.nn.functional.geometry import Pads, Pair

__all__ = ["DirectConv2d", "direct_backward", "direct_forward"]

KB = 16  # output channels per register block (two 8-float AVX2 vectors)
P_FWD = 4  # output pixels per forward block (2*P accumulators + 2 filter vectors + 1 broadcast <= 16 registers)
P_DW = 4  # input channels per weight-gradient block
DW_TILE_PIXELS = 64  # output pixels per weight-gradient tile (measured: 64 > 128 > whole image on VGG 64x32x32)
CHUNKS = 16  # batch chunks per call (threads take chunks t, t + T, ...)

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
    lines += ["for i in range(kh):",
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
    lines += ["for oy in range(oy0, oy1):",
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
    src = ["def _gen_fwd_image(xp, w, y, C, Hp, Wp, Kp, kh, kw, oh, ow, s, tmp):",
           "    # xp (Hp*Wp*C,) padded image channels-last; w (kh*kw*C*Kp,); y (oh*ow*Kp,) output image channels-last",
           *_PROLOGUE,
           *[f"    o{p} = u({p} * s * C)" for p in range(P_FWD)],
           f"    for k0 in range(0, Kp, {KB}):",
           "        for oy in range(oh):",
           f"            for blk in range(ow // {P_FWD}):",
           f"                ox0 = blk * {P_FWD}",
           *_fwd_block(P_FWD, " " * 16),
           f"            for ox0 in range(ow - ow % {P_FWD}, ow):",
           *_fwd_block(1, " " * 16),
           ""]
    src += ["def _gen_dw_image(xp, g, dw, C, Hp, Wp, Kp, kh, kw, oy0, oy1, ow, s, tmp):",
            "    # xp (Hp*Wp*C,) padded image channels-last; g (oh*ow*Kp,) its dY channels-last; dw (kh*kw*C*Kp,) +=",
            *_PROLOGUE,
            "    for i in range(kh):",
            "        for j in range(kw):",
            f"            for k0 in range(0, Kp, {KB}):",
            f"                for blk in range(C // {P_DW}):",
            f"                    c0 = blk * {P_DW}",
            *_dw_block(P_DW, " " * 20),
            f"                for c0 in range(C - C % {P_DW}, C):",
            *_dw_block(1, " " * 20)]
    return "\n".join(src) + "\n"


_fwd_image = _dw_image = None  # Numba dispatchers, set by _compile()


def _fwd_chunk(x, w, out, bias, has_bias, top, left, Kp, kh, kw, s, xp, y, tmp):  # pragma: no cover - compiled
    """Forward of a batch chunk x (n, C, H, W) -> out (n, K, oh, ow) through the channels-last image buffers
    xp (Hp, Wp, C) (zero borders) and y (oh*ow*Kp,)."""
    n, C, H, W = x.shape
    K, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    Hp, Wp = xp.shape[0], xp.shape[1]
    flat = xp.reshape(Hp * Wp * C)
    for b in range(n):
        for c in range(C):  # x (C, H, W) -> the (Hp, Wp, C) interior
            for yy in range(H):
                for xx in range(W):
                    xp[top + yy, left + xx, c] = x[b, c, yy, xx]
        _fwd_image(flat, w, y, C, Hp, Wp, Kp, kh, kw, oh, ow, s, tmp)
        for k in range(K):  # y (oh*ow, Kp) -> out (K, oh, ow), + bias
            for yy in range(oh):
                for xx in range(ow):
                    v = y[(yy * ow + xx) * Kp + k]
                    if has_bias:
                        v += bias[k]
                    out[b, k, yy, xx] = v


def _dw_chunk(x, grad, dw, top, left, Kp, kh, kw, s, rows, xp, g, tmp):  # pragma: no cover - compiled
    """dW += the weight gradient of a chunk; xp (Hp, Wp, C) zero-bordered buffer, g (oh*ow*Kp,) buffer."""
    n, C, H, W = x.shape
    K, oh, ow = grad.shape[1], grad.shape[2], grad.shape[3]
    Hp, Wp = xp.shape[0], xp.shape[1]
    flat = xp.reshape(Hp * Wp * C)
    for b in range(n):
        for c in range(C):  # x (C, H, W) -> (Hp, Wp, C) interior
            for y in range(H):
                for xx in range(W):
                    xp[top + y, left + xx, c] = x[b, c, y, xx]
        for k in range(K):  # dY (K, oh, ow) -> (oh*ow, Kp); columns K..Kp stay zero
            for y in range(oh):
                for xx in range(ow):
                    g[(y * ow + xx) * Kp + k] = grad[b, k, y, xx]
        for oy0 in range(0, oh, rows):  # output-row tiles: x and dY rows of a tile stay in L1 across the blocks
            _dw_image(flat, g, dw, C, Hp, Wp, Kp, kh, kw, oy0, min(oh, oy0 + rows), ow, s, tmp)


def _compile() -> SimpleNamespace:
    """Build the Numba functions (imports Numba): the generated per-image kernels and the per-chunk drivers."""
    from numba import njit

    flags = {"nogil": True, "cache": True, "fastmath": {"contract"}}  # contract: FMAs; no reassociation, NaN/inf kept
    space: dict[str, Any] = globals()  # module-level functions of this file: Numba can cache them
    exec(compile(_source(), __file__, "exec"), space)
    for name in ("_fwd_image", "_dw_image"):
        space[name] = njit(**flags)(space["_gen" + name])
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
    jit.fwd_chunk(x, w, np.zeros((1, 1, 3, 3), dtype), np.zeros(1, dtype), False, 1, 1, KB, 3, 3, 1, xp,
                  np.zeros(9 * KB, dtype), tmp)
    jit.dw_chunk(x, np.zeros((1, 1, 3, 3), dtype), np.zeros(9 * KB, dtype), 1, 1, KB, 3, 3, 1, 1, xp,
                 np.zeros(9 * KB, dtype), tmp)


# ----- the engine functions ----------------------------------------------------------------------------------
def _padded_k(k: int) -> int:
    return -(-k // KB) * KB


def _chunks(n: int) -> list[slice]:
    step = max(1, -(-n // CHUNKS))
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


def _filters(weight: np.ndarray) -> np.ndarray:
    """(K, C, kh, kw) -> flat (kh, kw, C, Kp), output channels zero-padded to a multiple of KB."""
    k, c, kh, kw = weight.shape
    w = np.zeros((kh, kw, c, _padded_k(k)), dtype=weight.dtype)
    w[..., :k] = weight.transpose(2, 3, 1, 0)
    return w.reshape(-1)


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int, pads: Pads,
          out: np.ndarray) -> None:
    """out (N, K, oh, ow) = direct correlation of x (N, C, H, W) zero-padded by `pads` with weight (K, C, kh, kw)."""
    jit = _kernels(x.dtype)
    x = np.ascontiguousarray(x)
    n, c, h, w_ = x.shape
    k, _, kh, kw = weight.shape
    (top, bottom), (left, right) = pads
    w = _filters(weight)
    b = np.zeros(1, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)

    def task(chunk: slice, ws: SimpleNamespace) -> None:
        jit.fwd_chunk(x[chunk], w, out[chunk], b, bias is not None, top, left, kp, kh, kw, stride, ws.xp, ws.y,
                      ws.tmp)

    kp = _padded_k(k)
    run_chunks(task, _chunks(n), lambda: SimpleNamespace(
        xp=np.zeros((h + top + bottom, w_ + left + right, c), x.dtype), y=np.zeros(out[0].size // k * kp, x.dtype),
        tmp=np.zeros(KB, x.dtype)))


def direct_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, dilation: Pair,
                   padding: Pads, out: np.ndarray) -> None:
    """Fill the NCHW `out` with conv2d(x, weight) + bias (square stride, dilation 1, groups 1)."""
    _conv(x, weight, bias, stride[0], padding, out)


def direct_weight_grad(x: np.ndarray, grad: np.ndarray, weight_shape: tuple[int, ...], stride: int,
                       pads: Pads) -> np.ndarray:
    """dW (K, C, kh, kw): per-image blocks summed per thread, the threads' sums added in a fixed order."""
    jit = _kernels(x.dtype)
    x, grad = np.ascontiguousarray(x), np.ascontiguousarray(grad)
    n, c, h, w_ = x.shape
    k, _, kh, kw = weight_shape
    oh, ow = grad.shape[2:]
    kp = _padded_k(k)
    (top, bottom), (left, right) = pads

    def task(chunk: slice, ws: SimpleNamespace) -> None:
        jit.dw_chunk(x[chunk], grad[chunk], ws.acc, top, left, kp, kh, kw, stride, rows, ws.xp, ws.g, ws.tmp)

    rows = max(1, DW_TILE_PIXELS // ow)

    workspaces = run_chunks(task, _chunks(n), lambda: SimpleNamespace(
        xp=np.zeros((h + top + bottom, w_ + left + right, c), x.dtype), g=np.zeros(oh * ow * kp, x.dtype),
        tmp=np.zeros(P_DW * KB, x.dtype), acc=np.zeros(kh * kw * c * kp, x.dtype)))
    acc = workspaces[0].acc
    for ws in workspaces[1:]:
        acc += ws.acc
    return np.ascontiguousarray(acc.reshape(kh, kw, c, kp)[..., :k].transpose(3, 2, 0, 1))


def _full_pads(weight_shape: tuple[int, ...], pads: Pads) -> Pads:
    """Padding of dY whose stride-1 correlation with the flipped filters is dX (kk - 1 - pad on each side)."""
    kh, kw = weight_shape[2:]
    return tuple((kk - 1 - lo, kk - 1 - hi) for (lo, hi), kk in zip(pads, (kh, kw)))


def direct_backward(x: np.ndarray, grad: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair,
                    padding: Pads, dx: np.ndarray | None, need_w: bool) -> np.ndarray | None:
    """Fill dx (N, C, H, W) if given; return dW if `need_w`. dX: direct when stride 1, else col2im (GEMM engine)."""
    if dx is not None:
        if stride == (1, 1):
            flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, K, kh, kw)
            _conv(grad, flipped, None, 1, _full_pads(weight.shape, padding), dx)
        else:
            from convolve.engines.gemm_nhwc import col2im_nhwc

            k, c, kh, kw = weight.shape
            w_mat = weight.transpose(2, 3, 1, 0).reshape(1, kh * kw * c, k)  # (1, kh*kw*C, K)
            col2im_nhwc(grad.transpose(0, 2, 3, 1), w_mat, (kh, kw), stride, dilation, padding,
                        dx.transpose(0, 2, 3, 1))
    return direct_weight_grad(x, grad, weight.shape, stride[0], padding) if need_w else None


class DirectConv2d(NCHWConv2d):
    """conv2d as a Numba direct convolution: ungrouped, dilation 1, square stride, padding within the kernel."""

    @staticmethod
    def supports(x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair, groups: int) -> bool:
        if importlib.util.find_spec("numba") is None:
            return False
        kernel = tuple(weight.shape[2:])
        return (groups == 1 and dilation == (1, 1) and stride[0] == stride[1] and len(kernel) == 2
                and x.dtype in (np.float32, np.float64) and weight.dtype == x.dtype
                and all(0 <= lo < kk and 0 <= hi < kk for (lo, hi), kk in zip(padding, kernel)))

    @staticmethod
    def prefers(x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair,  # type: ignore[override]
                groups: int) -> bool:
        return False  # set from the measurements below

    fill_forward = staticmethod(direct_forward)
    fill_backward = staticmethod(direct_backward)
