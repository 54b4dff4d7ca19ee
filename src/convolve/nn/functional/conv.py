"""Convolutions: conv1d, conv2d and their transposes, the reference: im2col + GEMM, col2im, flipped filters.

What deep learning calls "convolution" is cross-correlation: the filter is slid over the input *without*
being flipped,

    y[n, k, oy, ox] = b[k] + sum_{c, i, j} w[k, c, i, j] * x_pad[n, c, oy*S + i*D, ox*S + j*D].

im2col copies every receptive field into one row of a matrix (N*oh*ow, C*kh*kw); the convolution is then one
GEMM with the weights seen as a (K, C*kh*kw) matrix (one GEMM per group). The backward pass:

* bias gradient    db = sum of dY over the batch and every position;
* weight gradient  dW = dY^T @ cols: the correlation of the input with the output gradient (one GEMM per group);
* input gradient   the *full* convolution of dY, zero-dilated by the stride, with the spatially flipped filters
  (in and out channels swapped): the lecture's "the backward pass of a convolution is a convolution with flipped
  filters", computed by the same im2col + GEMM as the forward pass.

A transposed convolution (`conv_transpose2d`) is the input-gradient computation of a convolution used as a
forward pass, so its forward is "GEMM + col2im" (col2im, the adjoint of im2col, sums each column entry back onto
the pixel it came from) and its backward "im2col + GEMM". conv1d runs as conv2d with a height-1 kernel. Padding
here is zero padding; other modes are `F.pad` before the convolution.

This file is the readable reference: plain NumPy over the whole batch. Faster kernels for the same Functions
(channels-last chunked GEMM, few-channel, depthwise, Winograd) live in `convolve/engines/`, and the engine
policy picks one per call (`convolve.use_engine`); each is tested equal to this code and to PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convolve.autograd import Context, Function
from convolve.engines.policy import policy
from convolve.nn.functional.geometry import (
    Pads,
    Pair,
    check_conv_tensors,
    check_kernel_fits,
    conv_output_size,
    padded_output_size,
    parse_geometry,
    parse_padding,
    transposed_output_size,
    transposed_paddings,
)
from convolve.tensor import Tensor

__all__ = ["conv1d", "conv2d", "conv_output_size", "conv_transpose1d", "conv_transpose2d"]


# ----- im2col and col2im -------------------------------------------------------------------------------------
def im2col(x_pad: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out_size: Pair) -> np.ndarray:
    """Gather every receptive field of the padded NCHW input into a contiguous (N, oh, ow, C, kh, kw) array."""
    n, c, _, _ = x_pad.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    s_n, s_c, s_h, s_w = x_pad.strides
    windows = as_strided(  # a read-only view, no copy: (N, oh, ow, C, kh, kw)
        x_pad, shape=(n, oh, ow, c, kh, kw), strides=(s_n, s_h * sh, s_w * sw, s_c, s_h * dh, s_w * dw),
        writeable=False,
    )
    return np.ascontiguousarray(windows)  # the one copy: im2col proper


def col2im(cols: np.ndarray, padded_size: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
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


def pad_spatial(x: np.ndarray, pads: Pads) -> np.ndarray:
    """Zero-pad the last two axes by ((top, bottom), (left, right)); a negative amount crops instead."""
    widths = [(0, 0)] * (x.ndim - 2) + [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
    x = np.pad(x, widths) if any(map(any, widths)) else x
    (top, bottom), (left, right) = ((max(-lo, 0), max(-hi, 0)) for lo, hi in pads)
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


# ----- conv2d ------------------------------------------------------------------------------------------------
def correlate(x_pad: np.ndarray, weight: np.ndarray, stride: Pair, dilation: Pair, groups: int) -> np.ndarray:
    """y (N, K, oh, ow) = the grouped cross-correlation of the padded x (N, C, Hp, Wp) with (K, C/G, kh, kw)."""
    n = x_pad.shape[0]
    k, c_g, kh, kw = weight.shape
    oh, ow = padded_output_size(x_pad.shape[2:], (kh, kw), stride, dilation)
    cols = im2col(x_pad, (kh, kw), stride, dilation, (oh, ow))  # (N, oh, ow, C, kh, kw)
    cols = cols.reshape(n * oh * ow, groups, c_g * kh * kw).transpose(1, 0, 2)  # (G, N*oh*ow, Cg*kh*kw)
    w_mat = weight.reshape(groups, k // groups, c_g * kh * kw)  # (G, Kg, Cg*kh*kw)
    y = grouped_matmul(cols, w_mat.transpose(0, 2, 1))  # (G, N*oh*ow, Kg)
    return np.ascontiguousarray(y.transpose(1, 0, 2).reshape(n, oh, ow, k).transpose(0, 3, 1, 2))


class Conv2dFunction(Function):
    """y = conv2d(x, w) + b for NCHW arrays; padding ((top, bottom), (left, right)) may be asymmetric ('same')."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *, stride: Pair,
                padding: Pads, dilation: Pair, groups: int) -> np.ndarray:
        y = correlate(pad_spatial(x, padding), weight, stride, dilation, groups)  # (N, K, oh, ow)
        if bias is not None:
            y += bias[:, None, None]
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, weight = ctx.saved
        stride, padding, dilation, groups = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad
        db = grad.sum(axis=(0, 2, 3)) if need_b else None  # (K,)
        dw = _weight_grad(pad_spatial(x, padding), grad, weight.shape, stride, dilation, groups) if need_w else None
        dx = _input_grad(grad, weight, x.shape, stride, padding, dilation, groups) if need_x else None
        return dx, dw, db


def _weight_grad(x_pad: np.ndarray, grad: np.ndarray, w_shape: tuple[int, ...], stride: Pair, dilation: Pair,
                 groups: int) -> np.ndarray:
    """dW (K, C/G, kh, kw) = dY^T @ cols per group: the correlation of the input with the output gradient."""
    n, k, oh, ow = grad.shape
    _, c_g, kh, kw = w_shape
    cols = im2col(x_pad, (kh, kw), stride, dilation, (oh, ow))  # (N, oh, ow, C, kh, kw), rebuilt, not cached
    cols = cols.reshape(n * oh * ow, groups, c_g * kh * kw).transpose(1, 0, 2)  # (G, N*oh*ow, Cg*kh*kw)
    g_mat = grad.transpose(0, 2, 3, 1).reshape(n * oh * ow, groups, k // groups).transpose(1, 0, 2)  # (G, M, Kg)
    dw = grouped_matmul(g_mat.transpose(0, 2, 1), cols)  # (G, Kg, Cg*kh*kw)
    return dw.reshape(w_shape)


def _input_grad(grad: np.ndarray, weight: np.ndarray, x_shape: tuple[int, ...], stride: Pair, padding: Pads,
                dilation: Pair, groups: int) -> np.ndarray:
    """dX (N, C, H, W): the stride-1 full convolution of the zero-dilated dY with the flipped filters.

    dY is spread out by the stride (S - 1 zeros between its pixels), padded by D(F-1) minus the forward padding
    on each side (plus the input rows no window reached at the end), and correlated with every filter flipped
    in space, its input and output channels swapped.
    """
    n, k, oh, ow = grad.shape
    _, c_g, kh, kw = weight.shape
    spread = np.zeros((n, k, (oh - 1) * stride[0] + 1, (ow - 1) * stride[1] + 1), dtype=grad.dtype)
    spread[:, :, ::stride[0], ::stride[1]] = grad  # (N, K, (oh-1)S+1, (ow-1)S+1)
    full = []
    for size, out, kk, s, d, (lo, hi) in zip(x_shape[2:], (oh, ow), (kh, kw), stride, dilation, padding):
        unreached = size + lo + hi - (d * (kk - 1) + 1) - (out - 1) * s  # padded input past the last window
        full.append((d * (kk - 1) - lo, d * (kk - 1) - hi + unreached))
    flipped = weight.reshape(groups, k // groups, c_g, kh, kw)[..., ::-1, ::-1]  # (G, Kg, Cg, kh, kw)
    flipped = flipped.transpose(0, 2, 1, 3, 4).reshape(groups * c_g, k // groups, kh, kw)  # (C, K/G, kh, kw)
    return correlate(pad_spatial(spread, tuple(full)), flipped, (1, 1), dilation, groups)  # (N, C, H, W)


# ----- conv_transpose2d ----------------------------------------------------------------------------------------
class ConvTranspose2dFunction(Function):
    """y = conv_transpose2d(x, w) + b: the input gradient of conv2d, run forward; weight (C_in, C_out/G, kh, kw)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *, stride: Pair,
                padding: Pair, output_padding: Pair, dilation: Pair, groups: int) -> np.ndarray:
        n, c_in, h, w = x.shape
        _, k_g, kh, kw = weight.shape
        c_out = k_g * groups
        oh, ow = (transposed_output_size(s, kk, st, p, op, d) for s, kk, st, p, op, d in
                  zip((h, w), (kh, kw), stride, padding, output_padding, dilation))
        full = (oh + 2 * padding[0], ow + 2 * padding[1])  # output before cropping `padding` off each side
        w_mat = weight.reshape(groups, c_in // groups, k_g * kh * kw)  # (G, Cg_in, Kg*kh*kw)
        x_mat = x.transpose(0, 2, 3, 1).reshape(-1, groups, c_in // groups).transpose(1, 0, 2)  # (G, N*H*W, Cg_in)
        dcols = grouped_matmul(x_mat, w_mat)  # (G, N*H*W, Kg*kh*kw)
        dcols = dcols.transpose(1, 0, 2).reshape(n, h, w, c_out, kh, kw)  # (N, H, W, C_out, kh, kw)
        y_full = col2im(dcols, full, stride, dilation)  # (N, C_out, oh + 2P, ow + 2P)
        out = np.ascontiguousarray(y_full[:, :, padding[0]:padding[0] + oh, padding[1]:padding[1] + ow])
        if bias is not None:
            out += bias[:, None, None]
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        return out  # (N, C_out, oh, ow)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, weight = ctx.saved
        stride, padding, dilation, groups = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad
        n, c_in, h, w = x.shape
        _, k_g, kh, kw = weight.shape
        g_full = np.pad(grad, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))  # (N, C_out, oh+2P, ow+2P)
        cols = im2col(g_full, (kh, kw), stride, dilation, (h, w))  # (N, H, W, C_out, kh, kw)
        cols = cols.reshape(-1, groups, k_g * kh * kw).transpose(1, 0, 2)  # (G, N*H*W, Kg*kh*kw)
        w_mat = weight.reshape(groups, c_in // groups, k_g * kh * kw)  # (G, Cg_in, Kg*kh*kw)
        dx = dw = None
        if need_x:  # an ordinary convolution of dY with the same weights
            dx_g = grouped_matmul(cols, w_mat.transpose(0, 2, 1))  # (G, N*H*W, Cg_in)
            dx = np.ascontiguousarray(dx_g.transpose(1, 0, 2).reshape(n, h, w, c_in).transpose(0, 3, 1, 2))
        if need_w:  # the correlation of dY with the input
            x_mat = x.transpose(0, 2, 3, 1).reshape(-1, groups, c_in // groups).transpose(1, 0, 2)  # (G, N*H*W, Cg)
            dw_t = grouped_matmul(cols.transpose(0, 2, 1), x_mat)  # (G, Kg*kh*kw, Cg_in)
            dw = np.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(weight.shape)
        db = grad.sum(axis=(0, 2, 3)) if need_b else None
        return dx, dw, db


# ----- the public functions -----------------------------------------------------------------------------------
def _batched(fn: str, input: Tensor, nd: int) -> tuple[Tensor, bool]:
    """Add the batch axis to unbatched input, as PyTorch accepts (C, H, W) for conv2d."""
    if input.ndim == nd + 1:
        return input.unsqueeze(0), True
    return input, False


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation of (N, C, H, W) or (C, H, W) input with (K, C/groups, kh, kw) filters (torch's conv2d)."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, nd=2, fn="conv2d")


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """1-D cross-correlation of (N, C, L) or (C, L) input with (K, C/groups, k) filters (torch's conv1d)."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, nd=1, fn="conv1d")


def _conv(input: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any, dilation: Any,
          groups: int, nd: int, fn: str) -> Tensor:
    """Validate, lift 1-D to 2-D (height 1) and unbatched to batched, run Conv2dFunction, undo the lifting."""
    check_conv_tensors(fn, input, weight, bias, groups, nd)
    groups = int(groups)
    strides, dilations = parse_geometry(fn, stride, dilation, nd)
    kernel = tuple(weight.shape[2:])
    pads = parse_padding(fn, padding, kernel, strides, dilations)
    check_kernel_fits(fn, tuple(input.shape[-nd:]), kernel, pads, dilations)
    x, unbatched = _batched(fn, input, nd)
    if nd == 1:  # (N, C, L) -> (N, C, 1, L); filters (K, Cg, k) -> (K, Cg, 1, k)
        x, weight = x.unsqueeze(2), weight.unsqueeze(2)
        strides, dilations, pads = (1, *strides), (1, *dilations), ((0, 0), *pads)
    y = policy.apply(Conv2dFunction, x, weight, bias, stride=strides, padding=pads, dilation=dilations, groups=groups)
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """Transposed 2-D convolution (the gradient of conv2d w.r.t. its input); weight (C_in, C_out/groups, kh, kw)."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 2,
                           "conv_transpose2d")


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """Transposed 1-D convolution; weight (C_in, C_out/groups, k)."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 1,
                           "conv_transpose1d")


def _conv_transpose(input: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any,
                    output_padding: Any, groups: int, dilation: Any, nd: int, fn: str) -> Tensor:
    """Validate the transposed-convolution arguments, lift to batched 2-D, run ConvTranspose2dFunction."""
    check_conv_tensors(fn, input, weight, bias, groups, nd, transposed=True)
    groups = int(groups)
    strides, dilations = parse_geometry(fn, stride, dilation, nd)
    pads, out_pads = transposed_paddings(fn, padding, output_padding, strides, dilations, nd)
    kernel = tuple(weight.shape[2:])
    sizes = tuple(transposed_output_size(*a) for a in zip(input.shape[-nd:], kernel, strides, pads, out_pads,
                                                            dilations))
    if any(s < 1 for s in sizes):
        raise ValueError(f"{fn}: the output size {sizes} would be non-positive for input {tuple(input.shape[-nd:])}, "
                         f"kernel {kernel}, stride {strides}, padding {pads}, dilation {dilations}")
    x, unbatched = _batched(fn, input, nd)
    if nd == 1:
        x, weight = x.unsqueeze(2), weight.unsqueeze(2)
        strides, dilations, pads, out_pads = (1, *strides), (1, *dilations), (0, *pads), (0, *out_pads)
    y = policy.apply(ConvTranspose2dFunction, x, weight, bias, stride=strides, padding=pads,
                     output_padding=out_pads, dilation=dilations, groups=groups)
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y
