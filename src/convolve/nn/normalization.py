"""LayerNorm and GroupNorm layers (no running statistics: the same computation in train and eval mode)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import convolve.nn.functional as F
from convolve.backend import get_default_dtype
from convolve.nn._checks import check_count
from convolve.nn.module import Module
from convolve.nn.parameter import Parameter
from convolve.tensor import Tensor


def _affine(module: Module, shape: tuple[int, ...], affine: bool, bias: bool, dtype: Any) -> None:
    """weight (ones) and bias (zeros) of `shape`, or None, as PyTorch registers them."""
    dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
    module.register_parameter("weight", Parameter(np.ones(shape, dtype=dtype)) if affine else None)
    module.register_parameter("bias", Parameter(np.zeros(shape, dtype=dtype)) if affine and bias else None)


class LayerNorm(Module):
    """Normalize each sample over its trailing `normalized_shape` dims, then scale and shift elementwise."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int | np.integer) else tuple(normalized_shape)
        self.normalized_shape = tuple(check_count(n, "normalized_shape", "LayerNorm") for n in shape)
        if not eps > 0:
            raise ValueError(f"LayerNorm: `eps` must be positive, got {eps}")
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self._bias = bias
        _affine(self, self.normalized_shape, elementwise_affine, bias, dtype)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self._bias}")


class GroupNorm(Module):
    """Normalize (N, C, *) input over groups of C/num_groups channels per sample; scale and shift per channel."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.num_groups = check_count(num_groups, "num_groups", "GroupNorm")
        self.num_channels = check_count(num_channels, "num_channels", "GroupNorm")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: `num_channels` (={num_channels}) must be divisible by `num_groups` "
                             f"(={num_groups})")
        if not eps > 0:
            raise ValueError(f"GroupNorm: `eps` must be positive, got {eps}")
        self.eps = eps
        self.affine = affine
        self._bias = bias
        _affine(self, (self.num_channels,), affine, bias, dtype)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim >= 2 and input.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: `input` has {input.shape[1]} channels (dim 1) but the layer was built for "
                             f"num_channels={self.num_channels}")
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, bias={self._bias}"


__all__ = ["GroupNorm", "LayerNorm"]
