"""`Linear` (y = x W^T + b, PyTorch's init) and `Identity`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import convolve.nn.functional as F
from convolve.backend import get_default_dtype
from convolve.nn import init
from convolve.nn._checks import check_count
from convolve.nn.module import Module
from convolve.nn.parameter import Parameter
from convolve.tensor import Tensor


class Identity(Module):
    """Returns its input; constructor arguments are accepted and ignored (as `torch.nn.Identity`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input


class Linear(Module):
    """Fully connected layer on (*, in_features) input; weight (out_features, in_features), bias (out_features,)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = check_count(in_features, "in_features", "Linear")
        self.out_features = check_count(out_features, "out_features", "Linear")
        dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty((out_features,), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self, generator: Any = None) -> None:
        """PyTorch's default: weight kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(in)), bias U(+-1/sqrt(in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


__all__ = ["Identity", "Linear"]
