"""Gradient clipping, as `torch.nn.utils`: scale all gradients so their joint norm is at most `max_norm`
(`clip_grad_norm_`, the norm of the per-parameter norms), or clamp every gradient element (`clip_grad_value_`).

Same signatures, defaults and results as PyTorch. `foreach` only chooses PyTorch's kernel, never the numbers:
it is validated (None, True or False) and otherwise has no effect here. Unlike PyTorch, a negative or NaN
`max_norm` / `clip_value` is an error (PyTorch would flip or scramble the gradients).
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from convolve.tensor import Tensor

TensorOrTensors = Tensor | Iterable[Tensor]


def _tensors(parameters: Any, fn: str) -> list[Tensor]:
    """`parameters` as a list of Tensors (a single Tensor becomes a one-element list)."""
    if isinstance(parameters, Tensor):
        return [parameters]
    if not isinstance(parameters, Iterable):
        raise TypeError(f"{fn}: `parameters` must be a Tensor or an iterable of Tensors, got "
                        f"{type(parameters).__name__}")
    is_generator = isinstance(parameters, types.GeneratorType)
    tensors = list(parameters)
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}: `parameters[{i}]` must be a Tensor, got {type(t).__name__}")
    if is_generator and not tensors and fn == "clip_grad_norm_":
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    return tensors


def _check_options(fn: str, foreach: Any, **flags: Any) -> None:
    if foreach is not None and not isinstance(foreach, bool):
        raise TypeError(f"{fn}: `foreach` must be None, True or False, got {foreach!r}")
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{fn}: `{name}` must be True or False, got {value!r}")


def _limit(value: Any, name: str, fn: str) -> float:
    """A non-negative float (inf allowed): the clipping threshold."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{fn}: `{name}` must be a number, got {value!r}")
    if not float(value) >= 0:
        raise ValueError(f"{fn}: `{name}` must be >= 0, got {value!r}")
    return float(value)


def _norm_order(norm_type: Any, fn: str) -> float:
    """`norm_type` as a float ('inf' and float('inf') both name the max norm)."""
    try:
        if isinstance(norm_type, bool):
            raise TypeError
        return float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: `norm_type` must be a number or 'inf', got {norm_type!r}") from None


def _vector_norm(x: np.ndarray, p: float) -> np.ndarray:
    """The p-norm of `x` viewed as one vector (torch.linalg.vector_norm), as a 0-d array of x's dtype."""
    a = np.abs(x.ravel())
    if p == math.inf:
        return a.max(initial=0).astype(x.dtype)
    if p == -math.inf:
        return a.min(initial=math.inf).astype(x.dtype)
    if p == 0:
        return np.asarray(np.count_nonzero(a), dtype=x.dtype)
    if p == 1:
        return np.asarray(a.sum(dtype=x.dtype))
    if p == 2:
        return np.asarray(np.sqrt(np.dot(a, a)), dtype=x.dtype)
    return np.asarray(np.sum(a ** p, dtype=x.dtype) ** (1 / p), dtype=x.dtype)


def get_total_norm(tensors: TensorOrTensors, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The `norm_type`-norm of all `tensors` viewed as one vector (the norm of their norms); 0 for none."""
    fn = "get_total_norm"
    items = _tensors(tensors, fn)
    _check_options(fn, foreach, error_if_nonfinite=error_if_nonfinite)
    p = _norm_order(norm_type, fn)
    if not items:
        return Tensor(np.array(0.0, dtype=np.float32))
    dtype = np.result_type(*(t.dtype for t in items))
    norms = np.array([_vector_norm(t.data, p) for t in items], dtype=dtype)  # (len(tensors),)
    total = _vector_norm(norms, p)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {p} for gradients from `parameters` is non-finite, so it "
                           f"cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           f"norm anyway, set `error_if_nonfinite=False`")
    return Tensor(total)


def clip_grads_with_norm_(parameters: TensorOrTensors, max_norm: float, total_norm: Tensor,
                          foreach: bool | None = None) -> None:
    """Scale every gradient in place by min(max_norm / (total_norm + 1e-6), 1), given a precomputed norm."""
    fn = "clip_grads_with_norm_"
    grads = [p.grad for p in _tensors(parameters, fn) if p.grad is not None]
    limit = _limit(max_norm, "max_norm", fn)
    _check_options(fn, foreach)
    norm = total_norm.data if isinstance(total_norm, Tensor) else np.asarray(total_norm)
    coef = np.minimum(limit / (norm + 1e-6), 1.0)  # multiplied even when 1, as PyTorch (no branch on the value)
    with np.errstate(invalid="ignore"):  # inf * 0 = nan when the norm is inf: PyTorch's result, no warning
        for g in grads:
            g.data *= coef.astype(g.dtype)


def clip_grad_norm_(parameters: TensorOrTensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scale the gradients of `parameters` in place so that their total `norm_type`-norm is at most `max_norm`.

    The norm is that of the per-parameter gradient norms (all gradients as one vector); gradients are
    multiplied by min(max_norm / (total + 1e-6), 1). Returns the total norm before clipping.
    """
    params = _tensors(parameters, "clip_grad_norm_")
    _limit(max_norm, "max_norm", "clip_grad_norm_")
    total = get_total_norm([p.grad for p in params if p.grad is not None], norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(params, max_norm, total, foreach)
    return total


def clip_grad_value_(parameters: TensorOrTensors, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient element of `parameters` into [-clip_value, clip_value], in place."""
    fn = "clip_grad_value_"
    grads = [p.grad for p in _tensors(parameters, fn) if p.grad is not None]
    limit = _limit(clip_value, "clip_value", fn)
    _check_options(fn, foreach)
    for g in grads:
        np.clip(g.data, -limit, limit, out=g.data)
