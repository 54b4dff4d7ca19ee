"""The Winograd engine: F(2x2, 3x3) for stride-1, dilation-1, ungrouped 3x3 convolutions, 2.25x fewer multiplies.

The padded input is cut into 4x4 tiles overlapping by 2 (stride 2); each tile d becomes V = B^T d B, each filter g
becomes U = G g G^T, and each 2x2 output tile is A^T M A with M[a, b] = sum_c U[a, b, c, k] V[a, b, c]: for each of
the 16 tile elements (a, b) one GEMM (tiles x C) @ (C x K). Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks" (2016).

Backward: dX is the same Winograd convolution of dY with the flipped, in/out-swapped filters (full padding); dW is
G^T (sum over tiles of V * (A dY_tile A^T)) G, i.e. 16 GEMMs V[a, b]^T @ dY~[a, b] in the same domain.
Tiles are laid out channels-last (16, n*th*tw, C); batch chunks run through `workspace.run_chunks`.
It is preferred from `WinogradConv2d.min_channels` input and output channels on (benchmarks/RESULTS.md "Winograd").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.engines.kernel import NCHWConv2d
from convolve.engines.workspace import batch_chunks, pad_into, run_chunks
from convolve.nn.functional.geometry import Pads, Pair

__all__ = ["WinogradConv2d", "winograd_conv", "winograd_weight", "winograd_weight_grad"]

# Bytes of transformed input tiles (16 * th * tw * C values) per batch chunk (measured: see RESULTS "Winograd").
TILES_BUDGET_BYTES = 4 * 2**20

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])  # (4, 3) filter transform


def _sandwich(m: np.ndarray, arr: np.ndarray) -> np.ndarray:
    """out[a, b, ...] = sum_ij m[a, i] m[b, j] arr[i, j, ...] as two BLAS products (einsum was 15-30 ms at 256^2)."""
    once = np.tensordot(m, arr, axes=(1, 0))  # (a, j, ...)
    return np.tensordot(m, once, axes=(1, 1)).swapaxes(0, 1)  # (a, b, ...)


def winograd_weight(weight: np.ndarray) -> np.ndarray:
    """Filters (K, C, 3, 3) -> U (16, C, K): G g G^T per filter, laid out as the 16 GEMMs' right operands."""
    k, c = weight.shape[:2]
    u = _sandwich(_G.astype(weight.dtype), weight.transpose(2, 3, 1, 0))  # (4, 4, C, K)
    return np.ascontiguousarray(u).reshape(16, c, k)


def _tiles(size: tuple[int, int]) -> tuple[int, int]:
    """Number of 2x2 output tiles (th, tw) covering an (oh, ow) output."""
    return (size[0] + 1) // 2, (size[1] + 1) // 2


def _stage_input(buf: np.ndarray, src: np.ndarray, pads: Pads, oh_ow: tuple[int, int]) -> None:
    """Copy NHWC src, padded by `pads`, into buf (n, th+1, 2, 2, tw+1, C): pixel (y, x) at [y//2, y%2, x%2, x//2].

    Parity planes make every tile-row/column view below contiguous over (tw, C) instead of C alone.
    """
    rows = buf.reshape(buf.shape[0], -1, *buf.shape[3:])  # (n, 2th+2, 2, tw+1, C)
    (top, _), (left, _) = pads
    for px in range(2):
        s0 = (px - left) % 2  # first source column landing on parity px
        left_p = (s0 + left - px) // 2
        plane = rows[:, :oh_ow[0] + 2, px, :(oh_ow[1] + 3 - px) // 2]  # columns x = 2t + px < ow + 2
        pad_into(plane, src[:, :, s0::2], ((top, 0), (left_p, 0)))


def _input_transform(xb: np.ndarray, rows: np.ndarray, v: np.ndarray) -> None:
    """V = B^T d B for every 4x4 tile of the staged input xb (n, th+1, 2, 2, tw+1, C), into v (16, n*th*tw, C).

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]; rows (4, n, th, 2, tw+1, C) is scratch.
    """
    r = [xb[:, :-1, 0], xb[:, :-1, 1], xb[:, 1:, 0], xb[:, 1:, 1]]  # tile row i: (n, th, 2, tw+1, C)
    np.subtract(r[0], r[2], out=rows[0])
    np.add(r[1], r[2], out=rows[1])
    np.subtract(r[2], r[1], out=rows[2])
    np.subtract(r[1], r[3], out=rows[3])
    n, th, _, tw1, c = rows.shape[1:]
    v6 = v.reshape(4, 4, n, th, tw1 - 1, c)  # (4, 4, n, th, tw, C)
    for a in range(4):
        col = [rows[a][:, :, 0, :-1], rows[a][:, :, 1, :-1], rows[a][:, :, 0, 1:], rows[a][:, :, 1, 1:]]
        np.subtract(col[0], col[2], out=v6[a, 0])
        np.add(col[1], col[2], out=v6[a, 1])
        np.subtract(col[2], col[1], out=v6[a, 2])
        np.subtract(col[1], col[3], out=v6[a, 3])


def _output_transform(m: np.ndarray, z: np.ndarray, y: np.ndarray) -> None:
    """y (n, th, 2, 2, tw, K) = A^T M A per tile (pixel (2ty+p, 2tx+q) at [ty, p, q, tx]) for m (16, n*th*tw, K).

    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]; z (2, 4, n, th, tw, K) is scratch.
    """
    n, th, _, _, tw, k = y.shape
    m6 = m.reshape(4, 4, n, th, tw, k)
    np.add(m6[0], m6[1], out=z[0])
    z[0] += m6[2]
    np.subtract(m6[1], m6[2], out=z[1])
    z[1] -= m6[3]
    for p in range(2):
        np.add(z[p, 0], z[p, 1], out=y[:, :, p, 0])
        y[:, :, p, 0] += z[p, 2]
        np.subtract(z[p, 1], z[p, 2], out=y[:, :, p, 1])
        y[:, :, p, 1] -= z[p, 3]


class _Workspace:
    """Per-thread buffers of one batch chunk: staged input, row scratch, tiles V, GEMM results M, output."""

    def __init__(self, step: int, th: int, tw: int, c: int, k: int, dtype: np.dtype) -> None:
        self.xb = np.zeros((step, th + 1, 2, 2, tw + 1, c), dtype=dtype)  # borders stay zero across chunks
        self.rows = np.empty((4, step, th, 2, tw + 1, c), dtype=dtype)
        self.v = np.empty((16, step * th * tw, c), dtype=dtype)
        self.m = np.empty((16, step * th * tw, k), dtype=dtype)
        self.z = np.empty((2, 4, step, th, tw, k), dtype=dtype)
        self.y = np.empty((step, th, 2, 2, tw, k), dtype=dtype)


def _chunks(n: int, th: int, tw: int, c: int, itemsize: int) -> list[slice]:
    """Batch chunks whose transformed tiles fit TILES_BUDGET_BYTES."""
    return batch_chunks(n, 16 * th * tw * c * itemsize, TILES_BUDGET_BYTES)


def _store(y: np.ndarray, out: np.ndarray) -> None:
    """Write the planar tiles y (n, th, 2, 2, tw, K) into the NCHW output out (n, K, oh, ow), cropping odd edges."""
    oh, ow = out.shape[2:]
    for p in range(2):
        for q in range(2):
            out[:, :, p::2, q::2] = y[:, :(oh - p + 1) // 2, p, q, :(ow - q + 1) // 2].transpose(0, 3, 1, 2)


def winograd_conv(x: np.ndarray, u: np.ndarray, pads: Pads, out: np.ndarray, bias: np.ndarray | None = None) -> None:
    """out (N, K, oh, ow) = 3x3 stride-1 correlation of NCHW x padded by `pads` (negative: cropped), U (16, C, K)."""
    n, c = x.shape[:2]
    k, oh, ow = out.shape[1:]
    th, tw = _tiles((oh, ow))
    src = x.transpose(0, 2, 3, 1)  # (N, H, W, C) view
    chunks = _chunks(n, th, tw, c, x.itemsize)
    step = chunks[0].stop - chunks[0].start

    def task(chunk: slice, ws: _Workspace) -> None:
        nc = chunk.stop - chunk.start
        _stage_input(ws.xb[:nc], src[chunk], pads, (oh, ow))
        v, m = ws.v[:, :nc * th * tw], ws.m[:, :nc * th * tw]
        _input_transform(ws.xb[:nc], ws.rows[:, :nc], v)  # (16, nc*th*tw, C)
        np.matmul(v, u, out=m)  # (16, nc*th*tw, K)
        y = ws.y[:nc]
        _output_transform(m, ws.z[:, :, :nc], y)
        if bias is not None:
            y += bias
        _store(y, out[chunk])

    run_chunks(task, chunks, lambda: _Workspace(step, th, tw, c, k, x.dtype), first_come=True)  # disjoint outputs


def _grad_transform(gp: np.ndarray, rows: np.ndarray, gt: np.ndarray) -> None:
    """dY~ = A dY A^T for every 2x2 tile of the planar gp (n, th, 2, 2, tw, K), written to gt (16, n*th*tw, K).

    A = [[1, 0], [1, 1], [1, -1], [0, -1]]; rows (4, n, th, 2, tw, K) is scratch.
    """
    r0, r1 = gp[:, :, 0], gp[:, :, 1]  # (n, th, 2, tw, K)
    rows[0] = r0
    np.add(r0, r1, out=rows[1])
    np.subtract(r0, r1, out=rows[2])
    np.negative(r1, out=rows[3])
    n, th, _, tw, k = rows.shape[1:]
    g6 = gt.reshape(4, 4, n, th, tw, k)
    for a in range(4):
        c0, c1 = rows[a][:, :, 0], rows[a][:, :, 1]  # (n, th, tw, K)
        g6[a, 0] = c0
        np.add(c0, c1, out=g6[a, 1])
        np.subtract(c0, c1, out=g6[a, 2])
        np.negative(c1, out=g6[a, 3])


class _GradWorkspace(_Workspace):
    """Forward buffers plus dY's planar tiles and this thread's dW accumulator (16, C, K)."""

    def __init__(self, step: int, th: int, tw: int, c: int, k: int, dtype: np.dtype) -> None:
        super().__init__(step, th, tw, c, k, dtype)
        self.gp = np.zeros((step, th, 2, 2, tw, k), dtype=dtype)  # the odd tile row/column past (oh, ow) stays 0
        self.grows = np.empty((4, step, th, 2, tw, k), dtype=dtype)
        self.acc = np.zeros((16, c, k), dtype=dtype)
        self.prod = np.empty((16, c, k), dtype=dtype)


def winograd_weight_grad(x: np.ndarray, grad: np.ndarray, pads: Pads) -> np.ndarray:
    """dW (K, C, 3, 3) of the 3x3 stride-1 conv of NCHW x padded by `pads`, from grad (N, K, oh, ow)."""
    n, c = x.shape[:2]
    k, oh, ow = grad.shape[1:]
    th, tw = _tiles((oh, ow))
    src, g_src = x.transpose(0, 2, 3, 1), grad.transpose(0, 2, 3, 1)  # (N, H, W, C), (N, oh, ow, K)
    chunks = _chunks(n, th, tw, c + k, x.itemsize)
    step = chunks[0].stop - chunks[0].start

    def task(chunk: slice, ws: _GradWorkspace) -> None:
        nc = chunk.stop - chunk.start
        _stage_input(ws.xb[:nc], src[chunk], pads, (oh, ow))
        v, gt = ws.v[:, :nc * th * tw], ws.m[:, :nc * th * tw]
        _input_transform(ws.xb[:nc], ws.rows[:, :nc], v)  # (16, nc*th*tw, C)
        for p in range(2):
            for q in range(2):  # dY pixel (2ty+p, 2tx+q) to [ty, p, q, tx]
                ws.gp[:nc, :(oh - p + 1) // 2, p, q, :(ow - q + 1) // 2] = g_src[chunk][:, p::2, q::2]
        _grad_transform(ws.gp[:nc], ws.grows[:, :nc], gt)  # (16, nc*th*tw, K)
        np.matmul(v.transpose(0, 2, 1), gt, out=ws.prod)  # (16, C, K)
        ws.acc += ws.prod

    workspaces = run_chunks(task, chunks, lambda: _GradWorkspace(step, th, tw, c, k, x.dtype))
    acc = sum(ws.acc for ws in workspaces[1:]) + workspaces[0].acc  # (16, C, K)
    dw = _sandwich(_G.T.astype(x.dtype), acc.reshape(4, 4, c, k))  # (3, 3, C, K): G^T M G per (c, k)
    return np.ascontiguousarray(dw.transpose(3, 2, 0, 1))  # (K, C, 3, 3)


def _winograd_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, dilation: Pair,
                      padding: Pads, out: np.ndarray) -> None:
    """out (N, K, oh, ow) = the 3x3 stride-1 convolution of x through Winograd F(2x2, 3x3)."""
    winograd_conv(x, winograd_weight(weight), padding, out, bias)


def _winograd_backward(x: np.ndarray, grad: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair,
                       padding: Pads, dx: np.ndarray | None, need_w: bool) -> np.ndarray | None:
    """Fill dx (the Winograd conv of dY with flipped, in/out-swapped filters, full padding); return dW if asked."""
    if dx is not None:
        flipped = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, K, 3, 3)
        g_pads = tuple((2 - lo, 2 - hi) for lo, hi in padding)
        winograd_conv(grad, winograd_weight(flipped), g_pads, dx)
    return winograd_weight_grad(x, grad, padding) if need_w else None


class WinogradConv2d(NCHWConv2d):
    """Ungrouped 3x3 stride-1 dilation-1 conv2d through Winograd F(2x2, 3x3)."""

    min_channels = 128  # preferred when both channel counts reach this (measured: RESULTS "Winograd")

    @staticmethod
    def supports(x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair, groups: int) -> bool:
        return groups == 1 and tuple(weight.shape[2:]) == (3, 3) and stride == (1, 1) and dilation == (1, 1)

    @classmethod
    def prefers(cls, x: Any, weight: Any, bias: Any, *, stride: Pair, padding: Pads, dilation: Pair,  # type: ignore[override]
                groups: int) -> bool:
        return min(x.shape[1], weight.shape[0]) >= cls.min_channels

    fill_forward = staticmethod(_winograd_forward)
    fill_backward = staticmethod(_winograd_backward)
