"""Upsample: the layer form of `F.interpolate` (nearest, nearest-exact, linear, bilinear)."""

from __future__ import annotations

from collections.abc import Sequence

import convolve.nn.functional as F
from convolve.nn.functional.upsample import MODES
from convolve.nn.module import Module
from convolve.tensor import Tensor


class Upsample(Module):
    """Resize the spatial dims to `size` or by `scale_factor`, as `torch.nn.Upsample`."""

    def __init__(self, size: int | Sequence[int] | None = None, scale_factor: float | Sequence[float] | None = None,
                 mode: str = "nearest", align_corners: bool | None = None,
                 recompute_scale_factor: bool | None = None) -> None:
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError(f"Upsample: give exactly one of `size` and `scale_factor`, got size={size!r}, "
                             f"scale_factor={scale_factor!r}")
        if mode not in MODES:
            raise ValueError(f"Upsample: `mode` must be one of {sorted(MODES)}, got {mode!r}")
        self.size = size
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, int | float) else scale_factor
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"


__all__ = ["Upsample"]
