"""The activations PyTorch also offers as Tensor methods (`x.softmax(1)`, `x.relu()`, ...), attached to `Tensor`
here, above it in the import order, so each keeps its one implementation in this package."""

from __future__ import annotations

from typing import Any

from convolve.nn.functional.activation import log_softmax, relu, sigmoid, softmax, tanh
from convolve.tensor import Tensor


def _softmax(self: Tensor, dim: int, dtype: Any = None) -> Tensor:
    return softmax(self if dtype is None else self.to(dtype), dim)


def _log_softmax(self: Tensor, dim: int, dtype: Any = None) -> Tensor:
    return log_softmax(self if dtype is None else self.to(dtype), dim)


Tensor.softmax = _softmax  # type: ignore[attr-defined]
Tensor.log_softmax = _log_softmax  # type: ignore[attr-defined]
Tensor.relu = relu  # type: ignore[attr-defined]
Tensor.sigmoid = sigmoid  # type: ignore[attr-defined]
Tensor.tanh = tanh  # type: ignore[attr-defined]
