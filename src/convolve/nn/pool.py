"""Pooling layers: MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d (no parameters).

Arguments are stored as given (an int stays an int), as PyTorch does, except AvgPool1d which stores 1-tuples
like PyTorch. Each layer checks its arguments at construction with the functional's own rule and message
(`nn.functional.geometry`); output sizes follow `geometry.sliding_output_size` (floor, or ceil with `ceil_mode`).
"""

from __future__ import annotations

from typing import Any

import convolve.nn.functional as F
from convolve.nn.functional.geometry import adaptive_output_size, int_tuple, window_args
from convolve.nn.functional.pool import check_divisor_override
from convolve.nn.module import Module
from convolve.tensor import Tensor


class _PoolNd(Module):
    """The windowed pooling layers' shared arguments: kernel_size, stride (None: kernel_size), padding, ceil_mode."""

    nd = 2

    def __init__(self, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool, dilation: Any = 1) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        window_args(type(self).__name__, self.nd, kernel_size, self.stride, padding, dilation)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _MaxPoolNd(_PoolNd):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, dilation)
        self.dilation = dilation
        self.return_indices = return_indices

    def _kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"ceil_mode": self.ceil_mode}
        if self.return_indices:
            kw["return_indices"] = True
        return kw

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Max over windows of (N, C, L) input."""

    nd = 1

    def forward(self, input: Tensor) -> Any:
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation, **self._kwargs())


class MaxPool2d(_MaxPoolNd):
    """Max over windows of (N, C, H, W) input; the gradient goes to each window's arg-max."""

    def forward(self, input: Tensor) -> Any:
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, **self._kwargs())


class AvgPool1d(_PoolNd):
    """Mean over windows of (N, C, L) input."""

    nd = 1

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        fn = "AvgPool1d"
        super().__init__(int_tuple(kernel_size, 1, "kernel_size", fn),
                         int_tuple(stride if stride is not None else kernel_size, 1, "stride", fn),
                         int_tuple(padding, 1, "padding", fn, minimum=0), ceil_mode)  # 1-tuples, as PyTorch
        self.count_include_pad = count_include_pad

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class AvgPool2d(_PoolNd):
    """Mean over windows of (N, C, H, W) input; `divisor_override` replaces the window size as divisor."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override
        check_divisor_override("AvgPool2d", divisor_override)

    def forward(self, input: Tensor) -> Tensor:
        kw = {} if self.divisor_override is None else {"divisor_override": self.divisor_override}
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, **kw)


def _check_output_size(output_size: Any, fn: str) -> Any:
    """An int, or a pair of ints/None (None keeps that input size), each >= 1: the functional's rule."""
    adaptive_output_size(fn, output_size, 2)
    return tuple(output_size) if isinstance(output_size, list) else output_size


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed (oh, ow) whatever the input size (window i: floor(i*H/oh)..ceil((i+1)*H/oh))."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = _check_output_size(output_size, "AdaptiveAvgPool2d")

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed (oh, ow) whatever the input size."""

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size = _check_output_size(output_size, "AdaptiveMaxPool2d")
        self.return_indices = return_indices

    def forward(self, input: Tensor) -> Any:
        if self.return_indices:
            return F.adaptive_max_pool2d(input, self.output_size, return_indices=True)
        return F.adaptive_max_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool1d", "AvgPool2d", "MaxPool1d", "MaxPool2d"]
