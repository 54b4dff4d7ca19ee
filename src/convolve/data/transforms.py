"""Batch transforms (torchvision's names), vectorized over a whole batch of NumPy arrays.

`ToTensor` turns uint8 images (N, H, W) or (N, H, W, C) into float32 (N, C, H, W) in [0, 1]; every
other transform takes and returns float (N, C, H, W). Random transforms draw one decision per image
from `generator` (a `convolve.Generator`; the global one when None): pass one for reproducible runs,
since with a prefetching DataLoader they run on its background thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from convolve._validate import check_non_negative, check_positive, check_probability, ntuple
from convolve.random import Generator, rng

PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


def _check_nchw(x: Any, fn: str) -> np.ndarray:
    """`x` must be a floating (N, C, H, W) array (the output of ToTensor)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{fn}: expected a NumPy array (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.dtype.kind != "f":
        raise ValueError(
            f"{fn}: expected a float (N, C, H, W) batch (apply ToTensor first), got {x.dtype} with shape {x.shape}"
        )
    return x


class ToTensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W), divided by `max_value` (255; 16 for Digits)."""

    def __init__(self, max_value: float = 255.0) -> None:
        if not max_value > 0:
            raise ValueError(f"ToTensor: `max_value` must be positive, got {max_value}")
        self.max_value = float(max_value)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "ui":
            got = f"{x.dtype} array" if isinstance(x, np.ndarray) else type(x).__name__
            raise TypeError(f"ToTensor: expected an integer image batch (N, H, W) or (N, H, W, C), got {got}")
        if x.ndim == 3:
            x = x[:, None]  # (N, 1, H, W)
        elif x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        else:
            raise ValueError(f"ToTensor: expected a batch (N, H, W) or (N, H, W, C), got shape {x.shape}")
        out = x.astype(np.float32)  # contiguous copy in NCHW order
        out *= np.float32(1.0 / self.max_value)
        return out

    def __repr__(self) -> str:
        return f"ToTensor(max_value={self.max_value:g})"


class Normalize:
    """(x - mean[c]) / std[c] per channel; `mean`, `std` have one value per channel (or one for all)."""

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1 or len(self.mean) != len(self.std):
            raise ValueError(f"Normalize: `mean` and `std` must be sequences of equal length, got {mean!r}, {std!r}")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: `std` must be non-zero (division by zero), got {std!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_nchw(x, "Normalize")
        c = x.shape[1]
        if len(self.mean) not in (1, c):
            raise ValueError(f"Normalize: `mean`/`std` have {len(self.mean)} values but the batch has {c} channels")
        mean = self.mean.astype(x.dtype).reshape(1, -1, 1, 1)
        inv_std = (1.0 / self.std).astype(x.dtype).reshape(1, -1, 1, 1)
        return (x - mean) * inv_std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _padding4(padding: Any, fn: str) -> tuple[int, int, int, int]:
    """torchvision's padding forms -> (left, top, right, bottom): int, (lr, tb) or (l, t, r, b)."""
    if isinstance(padding, tuple | list) and len(padding) == 2:
        pad = ntuple(padding, 2, "padding", fn)
        pad4 = (pad[0], pad[1], pad[0], pad[1])
    else:
        pad = ntuple(padding, 4, "padding", fn)
        pad4 = (pad[0], pad[1], pad[2], pad[3])
    check_non_negative(pad4, "padding", fn)
    return pad4


def _pad(x: np.ndarray, pad4: tuple[int, int, int, int], fill: float, mode: str) -> np.ndarray:
    left, top, right, bottom = pad4
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=fill)
    return np.pad(x, widths, mode=mode)  # type: ignore[call-overload]


def _check_mode(mode: str, fn: str) -> str:
    if mode not in PADDING_MODES:
        raise ValueError(f"{fn}: `padding_mode` must be one of {PADDING_MODES}, got {mode!r}")
    return mode


class Pad:
    """Pad the borders of every image: `padding` int, (left/right, top/bottom) or (left, top, right, bottom)."""

    def __init__(self, padding: int | Sequence[int], fill: float = 0, padding_mode: str = "constant") -> None:
        self.padding = _padding4(padding, "Pad")
        self.fill = fill
        self.padding_mode = _check_mode(padding_mode, "Pad")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_nchw(x, "Pad")
        if self.padding_mode == "reflect":
            left, top, right, bottom = self.padding
            if max(top, bottom) >= x.shape[2] or max(left, right) >= x.shape[3]:
                raise ValueError(f"Pad: reflect padding {self.padding} must be smaller than the image {x.shape[2:]}")
        return _pad(x, self.padding, self.fill, self.padding_mode)

    def __repr__(self) -> str:
        return f"Pad(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode!r})"


class RandomCrop:
    """Pad by `padding` (optional), then cut a `size` window at an independent random offset per image."""

    def __init__(
        self,
        size: int | Sequence[int],
        padding: int | Sequence[int] | None = None,
        fill: float = 0,
        padding_mode: str = "constant",
        generator: Generator | None = None,
    ) -> None:
        self.size = ntuple(size, 2, "size", "RandomCrop")
        check_positive(self.size, "size", "RandomCrop")
        self.padding = None if padding is None else _padding4(padding, "RandomCrop")
        self.fill = fill
        self.padding_mode = _check_mode(padding_mode, "RandomCrop")
        self.generator = generator

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_nchw(x, "RandomCrop")
        if self.padding is not None:
            x = _pad(x, self.padding, self.fill, self.padding_mode)
        n, _, h, w = x.shape
        th, tw = self.size
        if th > h or tw > w:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the (padded) image size {(h, w)}")
        g = rng(self.generator)
        top = g.integers(0, h - th + 1, size=n)
        left = g.integers(0, w - tw + 1, size=n)
        windows = sliding_window_view(x, (th, tw), axis=(2, 3))  # (N, C, h-th+1, w-tw+1, th, tw), a view
        return windows[np.arange(n), :, top, left]  # (N, C, th, tw)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability `p`, independently per image."""

    def __init__(self, p: float = 0.5, generator: Generator | None = None) -> None:
        check_probability(p, "p", "RandomHorizontalFlip")
        self.p = float(p)
        self.generator = generator

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_nchw(x, "RandomHorizontalFlip")
        flip = np.asarray(rng(self.generator).random(x.shape[0]) < self.p)  # (N,)
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply `transforms` in order."""

    def __init__(self, transforms: Sequence[Callable[[np.ndarray], np.ndarray]]) -> None:
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"Compose: transforms[{i}] must be callable, got {type(t).__name__}")
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"
