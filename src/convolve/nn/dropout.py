"""Dropout layers. `p` is the probability of dropping (zeroing) an element, as PyTorch; survivors are scaled
by 1/(1-p) in training so that eval mode is the identity. `inplace=True` is passed to the functional op (which
overwrites the input's array). Masks come from the global generator (seeded by `convolve.manual_seed`).
"""

from __future__ import annotations

import convolve.nn.functional as F
from convolve._validate import check_probability
from convolve.nn.module import Module
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
        return F.dropout(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) (or unbatched (C, H, W)) input with probability p during training."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training, self.inplace)


__all__ = ["Dropout", "Dropout2d"]
