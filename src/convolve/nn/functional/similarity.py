"""normalize, cosine_similarity and kl_div, as `torch.nn.functional`: compositions of differentiable tensor ops
(so their gradients come from the ops' own backward passes)."""

from __future__ import annotations

import warnings

import numpy as np

from convolve._validate import check_float
from convolve.functions import maximum, where
from convolve.tensor import Tensor

__all__ = ["cosine_similarity", "kl_div", "normalize"]


def _norm(x: Tensor, p: float, dim: int, keepdim: bool) -> Tensor:
    if p == 2:
        return (x * x).sum(dim=dim, keepdim=keepdim).sqrt()
    if p == 1:
        return x.abs().sum(dim=dim, keepdim=keepdim)
    return (x.abs() ** p).sum(dim=dim, keepdim=keepdim) ** (1.0 / p)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """input / max(||input||_p along `dim`, eps)."""
    check_float(input, "input", "normalize")
    norm = _norm(input, p, dim, keepdim=True)
    return input / maximum(norm, Tensor._from_array(np.asarray(eps, dtype=input.dtype)))


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1 * x2) / max(||x1|| * ||x2||, eps) along `dim` (PyTorch clamps the product of the norms)."""
    check_float(x1, "x1", "cosine_similarity")
    check_float(x2, "x2", "cosine_similarity")
    dot = (x1 * x2).sum(dim=dim)
    denom = _norm(x1, 2, dim, keepdim=False) * _norm(x2, 2, dim, keepdim=False)
    return dot / maximum(denom, Tensor._from_array(np.asarray(eps, dtype=dot.dtype)))


def kl_div(input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || model) with `input` the model's log-probabilities: target * (log target - input), summed and
    reduced ('batchmean' divides by the batch size, the true KL; 'mean' by the element count, as PyTorch)."""
    fn = "kl_div"
    check_float(input, "input", fn)
    check_float(target, "target", fn)
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"{fn}: `target` shape {tuple(target.shape)} must equal `input` shape {tuple(input.shape)}")
    if reduction not in ("none", "sum", "mean", "batchmean"):
        raise ValueError(f"{fn}: `reduction` must be 'none', 'sum', 'mean' or 'batchmean', got {reduction!r}")
    if log_target:
        loss = target.exp() * (target - input)
    else:
        positive = target > 0  # 0 * log 0 = 0
        safe = where(positive, target, Tensor._from_array(np.ones((), dtype=target.dtype)))
        loss = where(positive, target * (safe.log() - input), Tensor._from_array(np.zeros((), dtype=input.dtype)))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    warnings.warn("kl_div: reduction='mean' divides the total loss by both the batch size and the support size; "
                  "'batchmean' divides only by the batch size, which is the KL divergence", UserWarning, stacklevel=2)
    return loss.mean()
