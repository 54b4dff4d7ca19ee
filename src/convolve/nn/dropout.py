"""Dropout layers. `p` is the probability of dropping (zeroing) an element, as PyTorch; survivors are scaled
by 1/(1-p) in training so that eval mode is the identity. `inplace=True` is accepted for compatibility but the
result is always a new tensor. Masks come from the global generator (seeded by `convolve.manual_seed`).
"""

from __future__ import annotations

import numpy as np

import convolve.nn.functional as F
from convolve._validate import check_probability, check_tensor
from convolve.nn.module import Module
from convolve.random import rng
from convolve.tensor import Tensor


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        check_probability(p, "p", type(self).__name__)
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero each element independently with probability p during training."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) (or unbatched (C, H, W)) input with probability p during training."""

    def forward(self, input: Tensor) -> Tensor:
        check_tensor(input, "input", "Dropout2d")
        if input.ndim not in (3, 4):
            raise ValueError(f"Dropout2d: `input` must be 4-D (N, C, H, W) or 3-D (C, H, W), got {input.ndim}-D "
                             f"with shape {input.shape}")
        if not self.training or self.p == 0:
            return input
        keep = rng().random((*input.shape[:-2], 1, 1)) >= self.p  # (N, C, 1, 1): one draw per channel
        scale = 0.0 if self.p == 1 else 1.0 / (1.0 - self.p)
        return input * Tensor(keep.astype(input.dtype) * np.asarray(scale, dtype=input.dtype))


__all__ = ["Dropout", "Dropout2d"]
