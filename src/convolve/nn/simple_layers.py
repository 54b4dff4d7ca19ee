"""Thin layers over existing ops, as in `torch.nn`: Dropout1d, AdaptiveAvgPool1d/AdaptiveMaxPool1d, Unflatten,
the padding layers (ZeroPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d), InstanceNorm2d (group norm
with one group per channel), Embedding (rows of a weight matrix, gathered by index) and KLDivLoss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import convolve.nn.functional as F
from convolve.backend import get_default_dtype
from convolve.nn._checks import check_count
from convolve.nn.dropout import _DropoutNd
from convolve.nn.module import Module
from convolve.nn.normalization import GroupNorm
from convolve.nn.parameter import Parameter
from convolve.random import rng
from convolve.tensor import Tensor


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) (or unbatched (C, L)) input with probability p during training."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout1d(input, self.p, self.training, self.inplace)


class AdaptiveAvgPool1d(Module):
    """Average pooling of (N, C, L) to `output_size` bins whatever L is."""

    def __init__(self, output_size: int) -> None:
        super().__init__()
        self.output_size = check_count(output_size, "output_size", "AdaptiveAvgPool1d")

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(AdaptiveAvgPool1d):
    """Max pooling of (N, C, L) to `output_size` bins whatever L is."""

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_max_pool1d(input, self.output_size)


class Unflatten(Module):
    """Split dim `dim` into `unflattened_size`: (N, 12) -> (N, 3, 4) with Unflatten(1, (3, 4))."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input: Tensor) -> Tensor:
        d = self.dim % input.ndim
        if int(np.prod(self.unflattened_size)) != input.shape[d] and -1 not in self.unflattened_size:
            raise ValueError(f"Unflatten: unflattened_size {self.unflattened_size} does not fit dim {self.dim} of "
                             f"size {input.shape[d]}")
        return input.reshape((*input.shape[:d], *self.unflattened_size, *input.shape[d + 1 :]))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class _Pad2d(Module):
    mode = "constant"

    def __init__(self, padding: int | Sequence[int], value: float = 0.0) -> None:
        super().__init__()
        self.padding = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        if len(self.padding) != 4:
            raise ValueError(f"{type(self).__name__}: `padding` must be an int or 4 ints (left, right, top, "
                             f"bottom), got {padding!r}")
        self.value = value

    def forward(self, input: Tensor) -> Tensor:
        return F.pad(input, self.padding, self.mode, self.value if self.mode == "constant" else None)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}" if type(self) is ConstantPad2d else f"{self.padding}"


class ZeroPad2d(_Pad2d):
    """Pad the last two dims with zeros; `padding` = (left, right, top, bottom) or one int for all."""

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding, 0.0)


class ConstantPad2d(_Pad2d):
    """Pad the last two dims with `value`."""


class ReflectionPad2d(ZeroPad2d):
    """Pad the last two dims with their reflection (the edge is not repeated)."""

    mode = "reflect"


class ReplicationPad2d(ZeroPad2d):
    """Pad the last two dims by repeating the edge."""

    mode = "replicate"


class InstanceNorm2d(GroupNorm):
    """Normalize each channel of each sample over its H x W positions (GroupNorm with one group per channel);
    `affine` adds a per-channel scale and shift. Running statistics are not supported."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, dtype: Any = None) -> None:
        if track_running_stats:
            raise ValueError("InstanceNorm2d: track_running_stats=True is not supported; instance statistics are "
                             "computed per sample in train and eval mode alike (leave it False)")
        super().__init__(num_features, num_features, eps, affine, True, dtype)
        self.num_features, self.momentum, self.track_running_stats = num_features, momentum, False

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim != 4:
            raise ValueError(f"InstanceNorm2d: expected 4-D input (N, C, H, W), got shape {tuple(input.shape)}")
        return super().forward(input)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.affine}, track_running_stats={self.track_running_stats}")


class Embedding(Module):
    """A lookup table: index i gives row i of `weight` (num_embeddings, embedding_dim), initialised N(0, 1);
    the row of `padding_idx` starts at zero and gets no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.num_embeddings = check_count(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = check_count(embedding_dim, "embedding_dim", "Embedding")
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
        weight = rng().standard_normal((num_embeddings, embedding_dim)).astype(dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        self.weight = Parameter(weight)

    def forward(self, input: Tensor) -> Tensor:
        idx = input.data if isinstance(input, Tensor) else np.asarray(input)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers (int64), got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise IndexError(f"Embedding: indices must be in [0, {self.num_embeddings}), got {idx.min()}..{idx.max()}")
        out = self.weight[idx]
        if self.padding_idx is not None and out.requires_grad:
            keep = (idx != self.padding_idx)[..., None].astype(out.dtype)
            out = out * Tensor._from_array(keep) + (out * Tensor._from_array(1 - keep)).detach()
        return out

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class KLDivLoss(Module):
    """KL divergence of `target` from `input` (log-probabilities), as `torch.nn.KLDivLoss`."""

    def __init__(self, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__()
        self.reduction, self.log_target = reduction, log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


__all__ = ["AdaptiveAvgPool1d", "AdaptiveMaxPool1d", "ConstantPad2d", "Dropout1d", "Embedding", "InstanceNorm2d",
           "KLDivLoss", "ReflectionPad2d", "ReplicationPad2d", "Unflatten", "ZeroPad2d"]
