"""Normalization layers: BatchNorm1d, BatchNorm2d (running statistics as buffers) and LocalResponseNorm."""

from __future__ import annotations

from typing import Any

import numpy as np

import convolve.nn.functional as F
from convolve.backend import get_default_dtype
from convolve.nn._checks import check_count
from convolve.nn.module import Module
from convolve.nn.parameter import Parameter
from convolve.tensor import Tensor


class _BatchNorm(Module):
    """Shared by BatchNorm1d/2d; state_dict keys weight, bias, running_mean, running_var, num_batches_tracked.

    Training mode normalizes with the batch statistics and updates the running ones
    (running = (1 - momentum) * running + momentum * batch, unbiased batch variance; momentum=None gives a
    cumulative average); eval mode normalizes with the running statistics.
    """

    ndims: tuple[int, ...] = ()
    layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        fn = type(self).__name__
        num_features = check_count(num_features, "num_features", fn)
        if not eps > 0:
            raise ValueError(f"{fn}: `eps` must be positive, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{fn}: `momentum` must be in [0, 1] or None, got {momentum}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
        self.register_parameter("weight", Parameter(np.ones(num_features, dtype=dtype)) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(num_features, dtype=dtype)) if affine and bias else None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
            if self.bias is not None:
                self.bias.data[...] = 0

    def _check_input(self, input: Tensor) -> None:
        fn = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{fn}: `input` must be a convolve Tensor, got {type(input).__name__}")
        if input.ndim not in self.ndims:
            want = " or ".join(f"{n}-D" for n in self.ndims)
            raise ValueError(f"{fn}: expected {want} input {self.layout}, got {input.ndim}-D with shape {input.shape}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"{fn}: `input` has {input.shape[1]} channels (dim 1) but the layer was built for "
                             f"num_features={self.num_features}")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data[...] += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use_buffers = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if use_buffers else None,
                            self.running_var if use_buffers else None, self.weight, self.bias,
                            bn_training, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) input over N (and L), per channel C."""

    ndims = (2, 3)
    layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) input over N, H, W, per channel C."""

    ndims = (4,)
    layout = "(N, C, H, W)"


class LocalResponseNorm(Module):
    """AlexNet's LRN across channels with PyTorch's convention: b = a / (k + alpha/n * sum_{window} a^2)^beta.

    Note: `alpha` is divided by the window `size` (PyTorch/Caffe); the AlexNet paper's alpha=1e-4 with n=5
    and k=2 is LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2) here.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size = check_count(size, "size", "LocalResponseNorm")
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input: Tensor) -> Tensor:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


__all__ = ["BatchNorm1d", "BatchNorm2d", "LocalResponseNorm"]
