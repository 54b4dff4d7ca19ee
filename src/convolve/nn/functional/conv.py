"""Convolutions: conv1d, conv2d and their transposes, as im2col + GEMM with hand-written backward passes.

What deep learning calls "convolution" is cross-correlation: the filter is slid over the input *without*
being flipped,

    y[n, k, oy, ox] = b[k] + sum_{c, i, j} w[k, c, i, j] * x_pad[n, c, oy*S + i*D, ox*S + j*D].

im2col copies every receptive field into one row of a matrix (N*oh*ow, C*kh*kw); the convolution is then one
GEMM with the weights seen as a (K, C*kh*kw) matrix (one GEMM per group). The backward pass is two more GEMMs:

* weight gradient  dW = dY^T @ cols: the correlation of the input with the output gradient;
* input gradient   dcols = dY @ W, then col2im sums each column entry back onto the pixel it came from.
  Written per pixel this is a *full* convolution of dY (zero-dilated by the stride) with the spatially
  flipped filters, the lecture's "backward pass of a convolution is a convolution with flipped filters";
  col2im computes exactly that sum without materialising the flipped kernel.

A transposed convolution (`conv_transpose2d`) is the input-gradient computation of a convolution used as a
forward pass, so its forward is "GEMM + col2im" and its backward is "im2col + GEMM". conv1d runs as conv2d
with a height-1 kernel. Padding here is zero padding; other modes are `F.pad` before the convolution.

Engines (`conv_path`, all measured against PyTorch in benchmarks/RESULTS.md "Performance"):
* 'gemm' (most layers): channels-last im2col of each batch chunk (a few MB, buffers reused; rebuilt in backward,
  never cached), one GEMM per group writing output rows; the stride-1 input gradient is the flipped-filter
  convolution of dY when that is cheaper than col2im;
* 'small' (ungrouped, C <= 8, or 1x1 kernels): NCHW im2col per image, W @ cols writes NCHW directly;
* 'depthwise' (groups == C, square stride): a shifted multiply-add per kernel offset, no GEMM;
* 'winograd' (3x3, stride 1, dilation 1, groups 1, C >= WINOGRAD_MIN_CHANNELS): Winograd F(2x2, 3x3), 16 GEMMs
  with 2.25x fewer multiplies for the output and both gradients (`_winograd.py`, RESULTS "Winograd").
Batch chunks run on Python threads (as many as OpenBLAS may use) while OpenBLAS itself is held to one thread
(`convolve._threads`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.autograd import Context, Function
from convolve.nn.functional._depthwise import depthwise_backward, depthwise_forward, is_depthwise
from convolve.nn.functional._im2col import (
    batch_chunks,
    col2im,
    col2im_nhwc,
    conv_nhwc,
    conv_weight_grad,
    grouped_matmul,
    im2col,
    out_size,
    small_backward,
    small_forward,
)
from convolve.nn.functional._winograd import winograd_conv, winograd_weight, winograd_weight_grad
from convolve.nn.functional.geometry import (
    Pads,
    check_conv_tensors,
    check_kernel_fits,
    conv_output_size,
    parse_geometry,
    parse_padding,
    transposed_output_size,
    transposed_paddings,
)
from convolve.tensor import Tensor

__all__ = ["conv1d", "conv2d", "conv_output_size", "conv_transpose1d", "conv_transpose2d"]

Pair = tuple[int, int]


# Convolution outputs (and input gradients) are returned as NCHW views of channels-last memory, the way
# PyTorch's `channels_last` format works: the GEMM writes NHWC rows, and the next layer's NHWC view of its
# input is then free. Elementwise ops keep the layout (NumPy's order='K'); every op accepts any strides.
CHANNELS_LAST = False  # measured: no faster per training step (BatchNorm/pool reductions slow down), so off

# The stride-1 input gradient runs as a convolution of dY with the flipped filters when the layer has at least
# this many input channels per group (its GEMM writes C columns) and H*W <= 2*oh*ow (its GEMM has H*W rows);
# otherwise col2im(dY @ W) is faster (measured).
FLIPPED_MIN_CHANNELS = 8

# Ungrouped layers with at most this many input channels take the NCHW-native small-channel path (measured:
# 2-3x faster for C = 1, 3, 6; 1.4-2.4x slower than the channels-last GEMM from C = 16), and so do 1x1 convs
# (their image is their column matrix: no copy, no layout conversion).
SMALL_MAX_CHANNELS = 8

# Ungrouped 3x3 stride-1 dilation-1 layers with at least this many input and output channels run as Winograd
# F(2x2, 3x3) (measured in benchmarks/RESULTS.md "Winograd"); `None` disables the engine.
WINOGRAD_MIN_CHANNELS: int | None = 128


def _empty_nchw(n: int, c: int, h: int, w: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """A new (N, C, H, W) array and its (N, H, W, C) view; channels-last memory if CHANNELS_LAST."""
    if CHANNELS_LAST:
        nhwc = np.empty((n, h, w, c), dtype=dtype)
        return nhwc.transpose(0, 3, 1, 2), nhwc
    nchw = np.empty((n, c, h, w), dtype=dtype)
    return nchw, nchw.transpose(0, 2, 3, 1)


def _w_mat(weight: np.ndarray, groups: int) -> np.ndarray:
    """Filters (K, Cg, kh, kw) as GEMM operands (G, kh*kw*Cg, Kg), rows in the channels-last im2col order."""
    k, c_g, kh, kw = weight.shape
    w5 = weight.reshape(groups, k // groups, c_g, kh, kw)
    return w5.transpose(0, 3, 4, 2, 1).reshape(groups, kh * kw * c_g, k // groups)


def _flipped_w_mat(weight: np.ndarray, groups: int) -> np.ndarray:
    """The filters of the input gradient of a stride-1 conv: spatially flipped, in/out swapped (G, kh*kw*Kg, Cg)."""
    k, c_g, kh, kw = weight.shape
    w5 = weight.reshape(groups, k // groups, c_g, kh, kw)[..., ::-1, ::-1]
    return w5.transpose(0, 3, 4, 1, 2).reshape(groups, kh * kw * (k // groups), c_g)


def conv_path(channels: int, weight_shape: tuple[int, ...], groups: int, stride: Pair = (1, 1)) -> str:
    """Which engine runs a conv2d: 'depthwise', 'small' (NCHW-native, few channels, 1x1) or 'gemm' (NHWC)."""
    if is_depthwise(channels, weight_shape, groups, stride):
        return "depthwise"
    if groups == 1 and (channels <= SMALL_MAX_CHANNELS or tuple(weight_shape[2:]) == (1, 1)):
        return "small"
    return "gemm"


def use_winograd(channels: int, weight_shape: tuple[int, ...], groups: int, stride: Pair, dilation: Pair) -> bool:
    """Whether a layer the 'gemm' engine would run takes Winograd F(2x2, 3x3) instead (WINOGRAD_MIN_CHANNELS)."""
    if WINOGRAD_MIN_CHANNELS is None or groups != 1 or tuple(weight_shape[2:]) != (3, 3):
        return False
    return stride == (1, 1) and dilation == (1, 1) and min(channels, weight_shape[0]) >= WINOGRAD_MIN_CHANNELS


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


_NCHW_ENGINES: dict[str, tuple[Any, Any]] = {
    "winograd": (_winograd_forward, _winograd_backward),
    "small": (small_forward, small_backward),
    "depthwise": (depthwise_forward, depthwise_backward),
}


class Conv2dFunction(Function):
    """y = conv2d(x, w) + b for NCHW arrays; padding (top, bottom, left, right) may be asymmetric ('same')."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *, stride: Pair,
                padding: Pads, dilation: Pair, groups: int) -> np.ndarray:
        n, c, h, w = x.shape
        k, _, kh, kw = weight.shape
        oh, ow = out_size((h + sum(padding[0]), w + sum(padding[1])), (kh, kw), stride, dilation)
        path = conv_path(c, weight.shape, groups, stride)
        if path == "gemm" and use_winograd(c, weight.shape, groups, stride, dilation):
            path = "winograd"
        ctx.save_for_backward(x, weight)  # no im2col cached: backward rebuilds it chunk by chunk
        ctx.geometry = (stride, padding, dilation, groups, path)
        if path != "gemm":  # NCHW-native engines
            out = np.empty((n, k, oh, ow), dtype=x.dtype)
            _NCHW_ENGINES[path][0](x, weight, bias, stride, dilation, padding, out)
            return out
        out, out_nhwc = _empty_nchw(n, k, oh, ow, x.dtype)  # (N, K, oh, ow) and its NHWC view
        src = x.transpose(0, 2, 3, 1)  # (N, H, W, C) view
        conv_nhwc(src, _w_mat(weight, groups), (kh, kw), stride, dilation, padding, out_nhwc, bias)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, weight = ctx.saved
        stride, padding, dilation, groups, path = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad
        db = grad.sum(axis=(0, 2, 3)) if need_b else None  # (K,)
        if path != "gemm":  # NCHW-native engines
            dx = np.empty(x.shape, dtype=x.dtype) if need_x else None  # (N, C, H, W)
            return dx, _NCHW_ENGINES[path][1](x, grad, weight, stride, dilation, padding, dx, need_w), db
        n, c, h, w = x.shape
        src, g = x.transpose(0, 2, 3, 1), grad.transpose(0, 2, 3, 1)  # (N, H, W, C), (N, oh, ow, K)
        dx, dx_nhwc = _empty_nchw(n, c, h, w, x.dtype) if need_x else (None, None)
        dw = _gemm_backward(src, g, weight, stride, padding, dilation, groups, dx_nhwc, need_w)
        return dx, dw, db


def _gemm_backward(src: np.ndarray, g: np.ndarray, weight: np.ndarray, stride: Pair, padding: Pads, dilation: Pair,
                   groups: int, dx: np.ndarray | None, need_w: bool) -> np.ndarray | None:
    """Channels-last backward: fill dx (N, H, W, C) if given; return dW (K, Cg, kh, kw) if `need_w`."""
    k, c_g, kh, kw = weight.shape
    dw = None
    if need_w:  # the correlation of the input with dY
        dw_mat = conv_weight_grad(src, g, (kh, kw), stride, dilation, padding, groups)  # (G, kh*kw*Cg, Kg)
        dw = np.ascontiguousarray(dw_mat.reshape(groups, kh, kw, c_g, k // groups).transpose(0, 4, 3, 1, 2))
        dw = dw.reshape(weight.shape)
    rows_ratio = src.shape[1] * src.shape[2] / (g.shape[1] * g.shape[2])  # H*W / (oh*ow)
    flipped = stride == (1, 1) and c_g >= FLIPPED_MIN_CHANNELS and rows_ratio <= 2
    if dx is not None and flipped:  # full conv with flipped filters (its GEMM has H*W rows, col2im's oh*ow)
        g_pads = tuple((d * (kk - 1) - lo, d * (kk - 1) - hi) for (lo, hi), kk, d in zip(padding, (kh, kw), dilation))
        conv_nhwc(g, _flipped_w_mat(weight, groups), (kh, kw), (1, 1), dilation, g_pads, dx)
    elif dx is not None:  # col2im(dY @ W^T) scatters each column back onto its pixel
        col2im_nhwc(g, _w_mat(weight, groups), (kh, kw), stride, dilation, padding, dx)
    return dw


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
        x_nhwc = x.transpose(0, 2, 3, 1)  # (N, H, W, C_in)
        out = np.empty((n, c_out, oh, ow), dtype=x.dtype)
        for chunk in batch_chunks(n, h * w * c_out * kh * kw * x.itemsize):
            x_mat = np.ascontiguousarray(x_nhwc[chunk]).reshape(-1, groups, c_in // groups).transpose(1, 0, 2)
            dcols = grouped_matmul(x_mat, w_mat)  # (G, n*H*W, Kg*kh*kw)
            dcols = dcols.transpose(1, 0, 2).reshape(-1, h, w, c_out, kh, kw)  # (n, H, W, C_out, kh, kw)
            y_full = col2im(dcols, full, stride, dilation)  # (n, C_out, oh + 2P, ow + 2P)
            out[chunk] = y_full[:, :, padding[0]:padding[0] + oh, padding[1]:padding[1] + ow]
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
        c_out = k_g * groups
        g_full = np.pad(grad, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))  # (N, C_out, oh+2P, ow+2P)
        w_mat = weight.reshape(groups, c_in // groups, k_g * kh * kw)  # (G, Cg_in, Kg*kh*kw)
        x_nhwc = x.transpose(0, 2, 3, 1)  # (N, H, W, C_in)
        dx = np.empty((n, h, w, c_in), dtype=x.dtype) if need_x else None
        dw_t = np.zeros((groups, k_g * kh * kw, c_in // groups), dtype=weight.dtype) if need_w else None
        for chunk in batch_chunks(n, h * w * c_out * kh * kw * x.itemsize):
            cols = im2col(g_full[chunk], (kh, kw), stride, dilation, (h, w))  # (n, H, W, C_out, kh, kw)
            cols = cols.reshape(-1, groups, k_g * kh * kw).transpose(1, 0, 2)  # (G, n*H*W, Kg*kh*kw)
            if dx is not None:  # an ordinary convolution of dY with the same weights
                dx_g = grouped_matmul(cols, w_mat.transpose(0, 2, 1))  # (G, n*H*W, Cg_in)
                dx[chunk] = dx_g.transpose(1, 0, 2).reshape(-1, h, w, c_in)
            if dw_t is not None:  # correlation of dY with the input
                x_mat = np.ascontiguousarray(x_nhwc[chunk]).reshape(-1, groups, c_in // groups)
                dw_t += grouped_matmul(cols.transpose(0, 2, 1), x_mat.transpose(1, 0, 2))  # (G, Kg*kh*kw, Cg_in)
        dx_out = None if dx is None else np.ascontiguousarray(dx.transpose(0, 3, 1, 2))  # (N, C_in, H, W)
        dw_out = None if dw_t is None else np.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(weight.shape)
        db = grad.sum(axis=(0, 2, 3)) if need_b else None
        return dx_out, dw_out, db


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
    y = Conv2dFunction.apply(x, weight, bias, stride=strides, padding=pads, dilation=dilations, groups=groups)
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
    y = ConvTranspose2dFunction.apply(x, weight, bias, stride=strides, padding=pads, output_padding=out_pads,
                                      dilation=dilations, groups=groups)
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y
