"""Converters of the layer ops (conv, pooling, normalization, linear, padding) to standard ONNX operators.

Each takes the `Emitter` of one traced step and returns the name of the value equal to the step's output.
Pooling geometry (right padding of ceil_mode windows, average-pool divisors, adaptive bins) comes from the
pooling module's own helpers, so the exported graph and the reference forward share one formula.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convolve.nn.functional._pool_windows import avg_divisor, bin_matrix
from convolve.nn.functional.geometry import adaptive_bins, right_padding, sliding_output_size
from convolve.onnx.graph import Emitter


def conv(e: Emitter) -> str:
    """Conv2dFunction -> Conv (pads may be asymmetric: 'same' with an even kernel)."""
    (top, bottom), (left, right) = e.kw["padding"]
    inputs = [e.input(0), e.input(1)] + ([e.input(2)] if e.has_input(2) else [])
    return e.op("Conv", inputs, kernel_shape=list(e.shape(1)[2:]), strides=list(e.kw["stride"]),
                pads=[top, left, bottom, right], dilations=list(e.kw["dilation"]), group=int(e.kw["groups"]))


def conv_transpose(e: Emitter) -> str:
    """ConvTranspose2dFunction -> ConvTranspose with output_padding."""
    ph, pw = e.kw["padding"]
    inputs = [e.input(0), e.input(1)] + ([e.input(2)] if e.has_input(2) else [])
    return e.op("ConvTranspose", inputs, kernel_shape=list(e.shape(1)[2:]), strides=list(e.kw["stride"]),
                pads=[ph, pw, ph, pw], dilations=list(e.kw["dilation"]), group=int(e.kw["groups"]),
                output_padding=list(e.kw["output_padding"]))


def _nchw(e: Emitter, body: Callable[[str], str]) -> str:
    """Run `body` on a 4-D value: an unbatched (C, H, W) input gets a batch axis for the pooling operator."""
    if len(e.shape(0)) == 4:
        return body(e.input(0))
    y = body(e.op("Unsqueeze", [e.input(0), e.ints([0])]))
    return e.op("Squeeze", [y, e.ints([0])])


def _reduce(e: Emitter, op_type: str, x: str, axes: list[int], keepdims: bool) -> str:
    """ReduceMax/ReduceMean/ReduceSum over `axes` (an attribute before opset 18, an input since; Sum since 13)."""
    if op_type == "ReduceSum" or e.opset >= 18:
        return e.op(op_type, [x, e.ints(axes)], keepdims=int(keepdims))
    return e.op(op_type, [x], axes=axes, keepdims=int(keepdims))


def max_pool(e: Emitter) -> str:
    """MaxPool2d -> MaxPool; ceil_mode windows become explicit right padding (ignored by max, as -inf)."""
    if e.kw.get("indices") is not None:
        raise e.fail("return_indices=True (ONNX MaxPool numbers indices over the whole tensor, PyTorch per "
                     "H*W plane); export a forward that returns the pooled values only")
    kernel, stride, padding, dilation, out = (e.kw[k] for k in ("kernel", "stride", "padding", "dilation", "out"))
    size = e.shape(0)[-2:]
    right = [right_padding(size[i], kernel[i], stride[i], padding[i], dilation[i], out[i]) for i in range(2)]
    pads = [padding[0], padding[1], right[0], right[1]]
    attrs: dict[str, Any] = {"kernel_shape": list(kernel), "strides": list(stride), "dilations": list(dilation)}
    if all(p < kernel[i % 2] for i, p in enumerate(pads)):  # onnxruntime's limit for operator padding
        return _nchw(e, lambda x: e.op("MaxPool", [x], pads=pads, **attrs))

    def padded(x: str) -> str:
        x = e.op("Pad", [x, e.ints([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]]), e.const(-np.inf)])
        return e.op("MaxPool", [x], **attrs)

    return _nchw(e, padded)


def avg_pool(e: Emitter) -> str:
    """AvgPool2d -> AveragePool; with ceil_mode overhang or divisor_override, zero Pad + AveragePool over full
    windows, times kh*kw / PyTorch's divisor per output position (exact for every option)."""
    kernel, stride, padding, out = (e.kw[k] for k in ("kernel", "stride", "padding", "out"))
    override, include_pad = e.kw["divisor_override"], bool(e.kw["count_include_pad"])
    size = e.shape(0)[-2:]
    attrs: dict[str, Any] = {"kernel_shape": list(kernel), "strides": list(stride)}
    floor = tuple(sliding_output_size(size[i], kernel[i], stride[i], padding[i], 1, False) for i in range(2))
    if override is None and floor == tuple(out):
        return _nchw(e, lambda x: e.op("AveragePool", [x], pads=[*padding, *padding],
                                        count_include_pad=int(include_pad), **attrs))
    right = [right_padding(size[i], kernel[i], stride[i], padding[i], 1, out[i]) for i in range(2)]
    if override is not None:
        divisor = np.full(tuple(out), float(override))
    else:
        counts = [avg_divisor(size[i], kernel[i], stride[i], padding[i], out[i])[0 if include_pad else 1]
                  for i in range(2)]
        divisor = counts[0][:, None] * counts[1][None, :]  # (oh, ow)
    factor = e.const(kernel[0] * kernel[1] / divisor)

    def body(x: str) -> str:
        x = e.op("Pad", [x, e.ints([0, 0, padding[0], padding[1], 0, 0, right[0], right[1]]), e.const(0.0)])
        return e.op("Mul", [e.op("AveragePool", [x], **attrs), factor])

    return _nchw(e, body)


def adaptive_avg_pool(e: Emitter) -> str:
    """AdaptiveAvgPool2d -> GlobalAveragePool, AveragePool (equal bins) or two MatMuls with bin-mean matrices."""
    (h, w), (oh, ow) = e.shape(0)[-2:], e.kw["out"]
    if (oh, ow) == (1, 1):
        return _nchw(e, lambda x: e.op("GlobalAveragePool", [x]))
    if h % oh == 0 and w % ow == 0:
        k = [h // oh, w // ow]
        return _nchw(e, lambda x: e.op("AveragePool", [x], kernel_shape=k, strides=k))
    rows, cols = bin_matrix(h, oh, np.dtype(np.float64)), bin_matrix(w, ow, np.dtype(np.float64))  # (oh, H), (ow, W)
    rows /= rows.sum(axis=1, keepdims=True)
    cols /= cols.sum(axis=1, keepdims=True)
    y = e.op("MatMul", [e.input(0), e.const(cols.T)])  # (..., H, ow)
    return e.op("MatMul", [e.const(rows), y])  # (..., oh, ow)


def adaptive_max_pool(e: Emitter) -> str:
    """AdaptiveMaxPool2d -> GlobalMaxPool, MaxPool (equal bins) or per-bin Slice + ReduceMax, rows then columns."""
    if e.kw.get("indices") is not None:
        raise e.fail("return_indices=True; export a forward that returns the pooled values only")
    (h, w), (oh, ow) = e.shape(0)[-2:], e.kw["out"]
    if (oh, ow) == (1, 1):
        return _nchw(e, lambda x: e.op("GlobalMaxPool", [x]))
    if h % oh == 0 and w % ow == 0:
        k = [h // oh, w // ow]
        return _nchw(e, lambda x: e.op("MaxPool", [x], kernel_shape=k, strides=k))
    y = e.input(0)
    for axis, size, bins in ((-2, h, oh), (-1, w, ow)):
        starts, ends = adaptive_bins(size, bins)
        parts = [_reduce(e, "ReduceMax", e.op("Slice", [y, e.ints([s]), e.ints([t]), e.ints([axis])]), [axis], True)
                 for s, t in zip(starts, ends)]
        y = e.op("Concat", parts, axis=axis)
    return y


def batch_norm(e: Emitter) -> str:
    """BatchNorm with running statistics -> BatchNormalization (batch statistics cannot be exported)."""
    if e.kw["training"]:
        raise e.fail("batch statistics (training=True); call model.eval() or pass training=False")
    c = e.shape(0)[1]
    scale = e.input(1) if e.has_input(1) else e.const(np.ones(c))
    bias = e.input(2) if e.has_input(2) else e.const(np.zeros(c))
    mean, var = (e.graph.value(e.kw[k], f"{e.prefix}/{k}") for k in ("running_mean", "running_var"))
    return e.op("BatchNormalization", [e.input(0), scale, bias, mean, var], epsilon=float(e.kw["eps"]))


def layer_norm(e: Emitter) -> str:
    """LayerNorm -> LayerNormalization over the last k axes (opset >= 17)."""
    if e.opset < 17:
        raise e.fail(f"LayerNormalization needs opset_version >= 17, got {e.opset}")
    k = int(e.kw["k"])
    shape = e.shape(0)[-k:]
    scale = e.input(1) if e.has_input(1) else e.const(np.ones(shape))
    inputs = [e.input(0), scale] + ([e.input(2)] if e.has_input(2) else [])
    return e.op("LayerNormalization", inputs, axis=-k, epsilon=float(e.kw["eps"]))


def local_response_norm(e: Emitter) -> str:
    """LocalResponseNorm -> LRN for odd sizes. ONNX centres an even window one channel to the right of
    PyTorch's (and onnxruntime refuses even sizes), so an even size becomes x * (k + alpha/size * S)^-beta with
    S = the window sums of x^2 as a 1x1 Conv by a 0/1 band matrix over the channels."""
    size, alpha, beta, k = (e.kw[n] for n in ("size", "alpha", "beta", "k"))
    if size % 2:
        return e.op("LRN", [e.input(0)], size=int(size), alpha=float(alpha), beta=float(beta), bias=float(k))
    shape = e.shape(0)
    c = shape[1]
    out_c, in_c = np.arange(c)[:, None], np.arange(c)[None, :]
    band = (in_c >= out_c - size // 2) & (in_c <= out_c + (size - 1) // 2)  # PyTorch's window per output channel
    weight = band.astype(np.float64).reshape(c, c, *([1] * (len(shape) - 2)))  # (C, C, 1, ...)
    x = e.input(0)
    sums = e.op("Conv", [e.op("Mul", [x, x]), e.const(weight)], kernel_shape=[1] * (len(shape) - 2))
    base = e.op("Add", [e.op("Mul", [sums, e.const(alpha / size)]), e.const(k)])
    return e.op("Mul", [x, e.op("Pow", [base, e.const(-beta)])])


def linear(e: Emitter) -> str:
    """Linear -> Gemm (transB) for 2-D input, else MatMul with the transposed weight (+ Add of the bias)."""
    if len(e.shape(0)) == 2:
        inputs = [e.input(0), e.input(1)] + ([e.input(2)] if e.has_input(2) else [])
        return e.op("Gemm", inputs, transB=1)
    y = e.op("MatMul", [e.input(0), e.op("Transpose", [e.input(1)], perm=[1, 0])])
    return e.op("Add", [y, e.input(2)]) if e.has_input(2) else y


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


def pad(e: Emitter) -> str:
    """Pad -> Pad: constant (negative widths crop), reflect, edge; circular as 'wrap' from opset 19, else as
    Slice + Concat per axis."""
    widths, mode = e.kw["widths"], e.kw["mode"]
    pads = [lo for lo, _ in widths] + [hi for _, hi in widths]
    if mode == "constant":
        return e.op("Pad", [e.input(0), e.ints(pads), e.const(float(e.kw["value"]))], mode="constant")
    if mode in _PAD_MODES:
        return e.op("Pad", [e.input(0), e.ints(pads)], mode=_PAD_MODES[mode])
    if e.opset >= 19:
        return e.op("Pad", [e.input(0), e.ints(pads)], mode="wrap")
    y = e.input(0)
    for axis, (lo, hi) in enumerate(widths):  # circular: the last `lo` entries before, the first `hi` after
        if lo or hi:
            parts = [e.op("Slice", [y, e.ints([-lo]), e.ints([np.iinfo(np.int64).max]), e.ints([axis])])] if lo else []
            parts.append(y)
            if hi:
                parts.append(e.op("Slice", [y, e.ints([0]), e.ints([hi]), e.ints([axis])]))
            y = e.op("Concat", parts, axis=axis)
    return y
