"""Test helpers: run the same inputs through convolve and PyTorch, compare outputs and every gradient."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

import convolve as cv

TOL = {np.float64: dict(rtol=1e-7, atol=1e-9), np.float32: dict(rtol=1e-4, atol=1e-5)}


def assert_close(ours: np.ndarray, theirs: np.ndarray, dtype: Any, what: str) -> None:
    tol = TOL[np.dtype(dtype).type]
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} (convolve) != {theirs.shape} (torch)"
    if not np.allclose(ours, theirs, equal_nan=True, **tol):
        err = np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)))
        raise AssertionError(f"{what}: max abs error {err:.3g} exceeds {tol} (shape {ours.shape}, dtype {dtype})")


def compare_with_torch(
    ours: Callable[..., cv.Tensor],
    theirs: Callable[..., torch.Tensor],
    arrays: Sequence[np.ndarray],
    dtype: Any = np.float64,
    grad: Sequence[bool] | None = None,
    seed: int = 0,
) -> None:
    """Feed `arrays` (cast to `dtype`) to both functions; compare the output and the gradient of every input.

    `grad[i]` says whether input i is differentiated (default: every floating input). The upstream gradient
    is the same random array for both, so every output element is checked in backward.
    """
    grad = [np.asarray(a).dtype.kind == "f" for a in arrays] if grad is None else list(grad)
    cast = [np.asarray(a, dtype=dtype) if g else np.asarray(a) for a, g in zip(arrays, grad)]
    cv_in = [cv.tensor(a, requires_grad=g) for a, g in zip(cast, grad)]
    th_in = [torch.tensor(a, requires_grad=g) for a, g in zip(cast, grad)]
    out_cv, out_th = ours(*cv_in), theirs(*th_in)
    assert out_cv.dtype == np.dtype(dtype), f"output dtype {out_cv.dtype} != {np.dtype(dtype)}"
    assert_close(out_cv.numpy(), out_th.detach().numpy(), dtype, "forward")
    if not any(grad):
        return
    upstream = np.random.default_rng(seed).standard_normal(out_th.shape).astype(dtype)
    out_cv.backward(cv.tensor(upstream))
    out_th.backward(torch.tensor(upstream))
    for i, (a, b, g) in enumerate(zip(cv_in, th_in, grad)):
        if not g:
            continue
        assert a.grad is not None, f"input {i}: convolve produced no gradient"
        assert_close(a.grad.numpy(), b.grad.numpy(), dtype, f"gradient of input {i}")
