"""`Flatten`: merge dims start_dim..end_dim (default: everything but the batch) into one."""

from __future__ import annotations

import convolve.nn.functional as F
from convolve.nn.module import Module
from convolve.tensor import Tensor


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W) with the defaults; as `torch.nn.Flatten`."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Flatten: `{name}` must be an int, got {value!r}")
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


__all__ = ["Flatten"]
