"""Convolution layers `Conv1d`, `Conv2d`, `ConvTranspose2d`: argument checks, parameters, PyTorch's init.

Padding modes other than 'zeros' are done as PyTorch does: `F.pad` the input explicitly, then convolve with
padding 0. Zero padding, even uneven (the 'same' padding of an even effective kernel puts the extra pixel at the
end, bottom/right, as PyTorch and TensorFlow), is passed to the convolution as (before, after) pairs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import convolve.nn.functional as F
from convolve.backend import get_default_dtype
from convolve.nn import init
from convolve.nn._checks import check_count
from convolve.nn.functional.geometry import (
    check_channels,
    int_tuple,
    parse_padding,
    transposed_output_size,
    transposed_paddings,
)
from convolve.nn.module import Module
from convolve.nn.parameter import Parameter
from convolve.tensor import Tensor

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_F_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


class _ConvNd(Module):
    """Shared by every convolution: validation, weight/bias creation, PyTorch's default init and repr."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any, padding: Any,
                 dilation: Any, transposed: bool, output_padding: Any, groups: int, bias: bool,
                 padding_mode: str, nd: int, dtype: Any = None) -> None:
        super().__init__()
        fn = type(self).__name__
        self.in_channels = check_count(in_channels, "in_channels", fn)
        self.out_channels = check_count(out_channels, "out_channels", fn)
        self.groups = check_channels(fn, self.in_channels, self.out_channels, groups)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{fn}: `padding_mode` must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.kernel_size = int_tuple(kernel_size, nd, "kernel_size", fn)
        self.stride = int_tuple(stride, nd, "stride", fn)
        self.dilation = int_tuple(dilation, nd, "dilation", fn)
        pairs = parse_padding(fn, padding, self.kernel_size, self.stride, self.dilation)  # the functional's rule
        if transposed:
            self.padding, self.output_padding = transposed_paddings(fn, padding, output_padding, self.stride,
                                                                    self.dilation, nd)
        else:
            symmetric = all(lo == hi for lo, hi in pairs)
            self.padding = padding if isinstance(padding, str) else tuple(lo if symmetric else (lo, hi)
                                                                           for lo, hi in pairs)
            self.output_padding = int_tuple(output_padding, nd, "output_padding", fn, minimum=0)
        self.transposed = transposed
        self.padding_mode = padding_mode
        # F.pad order: last dim first, (left, right) per dim; 'same' puts the odd pixel at the end
        self._reversed_padding_repeated_twice = tuple(v for pair in reversed(pairs) for v in pair)
        dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
        shape = (in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups)
        self.weight = Parameter(np.empty((*shape, *self.kernel_size), dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self, generator: Any = None) -> None:
        """PyTorch's default: weight kaiming_uniform_(a=sqrt(5)), i.e. U(+-1/sqrt(fan_in)); bias U(+-1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def _pad_input(self, input: Tensor) -> tuple[Tensor, Any]:
        """The input, explicitly padded for non-zero modes, and the padding to pass to the conv op."""
        pads = self._reversed_padding_repeated_twice
        if self.padding_mode == "zeros":  # (before, after) per spatial dim, first dim first; may be uneven ('same')
            return input, tuple((pads[i], pads[i + 1]) for i in range(len(pads) - 2, -1, -2))
        return F.pad(input, pads, mode=_F_MODE[self.padding_mode]), 0

    def extra_repr(self) -> str:
        nd = len(self.kernel_size)
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) input; weight (C_out, C_in/groups, k)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0, groups, bias,
                         padding_mode, nd=1, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:
        x, padding = self._pad_input(input)
        return F.conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) input; weight (C_out, C_in/groups, kh, kw)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0, groups, bias,
                         padding_mode, nd=2, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:
        x, padding = self._pad_input(input)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (gradient of Conv2d w.r.t. its input); weight (C_in, C_out/groups, kh, kw).

    Output size per dim: (in - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1,
                 padding_mode: str = "zeros", dtype: Any = None) -> None:
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2d: only padding_mode='zeros' is supported, got {padding_mode!r}")
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: `padding` must be an int or a tuple of 2 ints, got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, True, output_padding,
                         groups, bias, padding_mode, nd=2, dtype=dtype)

    def _output_padding(self, input: Tensor, output_size: Any) -> tuple[int, ...]:
        """output_padding that yields `output_size` (H, W) (or (..., H, W)); PyTorch's `output_size=` argument."""
        if output_size is None:
            return self.output_padding
        size = tuple(int(s) for s in output_size)[-2:]
        result = []
        for i, want in enumerate(size):
            base = transposed_output_size(input.shape[-2 + i], self.kernel_size[i], self.stride[i],
                                          self.padding[i], 0, self.dilation[i])
            extra = want - base
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(f"ConvTranspose2d: requested `output_size` {size} is not reachable; dim {i} must "
                                 f"be in [{base}, {base + max(self.stride[i], self.dilation[i]) - 1}]")
            result.append(extra)
        return tuple(result)

    def forward(self, input: Tensor, output_size: Any = None) -> Tensor:
        output_padding = self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.groups, self.dilation)


__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d"]
