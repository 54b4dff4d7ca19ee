"""Gradient checking by central finite differences, for users' own ops and for our test suite."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from convolve.autograd import no_grad
from convolve.tensor import Tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the finite-difference estimate."""


def numerical_grad(fn: Callable[..., Tensor], inputs: Sequence[Tensor], index: int, weight: np.ndarray,
                   eps: float) -> np.ndarray:
    """d sum(weight * fn(*inputs)) / d inputs[index], by central differences, one element at a time."""
    x = inputs[index].data  # perturbed in place, element by element (works for non-contiguous arrays too)
    grad = np.zeros(x.shape, dtype=np.float64)
    with no_grad():
        for i in np.ndindex(x.shape):
            orig = x[i]
            x[i] = orig + eps
            plus = float(np.sum(weight * fn(*inputs).data))
            x[i] = orig - eps
            minus = float(np.sum(weight * fn(*inputs).data))
            x[i] = orig
            grad[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Any], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check every input gradient of `fn` against central differences; raise GradcheckError on mismatch.

    `inputs` should be float64 tensors; those with `requires_grad=True` are checked. The scalar checked is
    sum(w * fn(*inputs)) with a fixed random `w`, so every output element's gradient path is exercised.
    Returns True when all gradients agree (|analytic - numeric| <= atol + rtol * |numeric|).
    """
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in inputs]
    for i, t in enumerate(tensors):
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck: `inputs[{i}]` should be float64 for finite differences, got {t.dtype}")
    out = fn(*tensors)
    weight = np.random.default_rng(seed).standard_normal(out.shape)
    for t in tensors:
        t.grad = None
    (out * Tensor(weight.astype(out.dtype))).sum().backward()
    for i, t in enumerate(tensors):
        if not t.requires_grad:
            continue
        analytic = np.zeros(t.shape) if t.grad is None else t.grad.data
        numeric = numerical_grad(fn, tensors, i, weight, eps)
        bad = np.abs(analytic - numeric) > atol + rtol * np.abs(numeric)
        if bad.any():
            where = np.argwhere(bad)[:5].tolist()
            raise GradcheckError(
                f"gradcheck: gradient of input {i} (shape {t.shape}) differs at {int(bad.sum())} of {t.data.size}"
                f" elements, e.g. {where}: analytic {analytic[bad][:5]} vs numeric {numeric[bad][:5]}"
            )
    return True
