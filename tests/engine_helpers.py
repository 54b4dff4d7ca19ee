"""Helpers for engine tests: run a block on chosen kernels only, and compare an engine with the reference."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

import convolve as cv
from convolve.engines.policy import policy


@contextmanager
def forced(*kernels: type) -> Iterator[None]:
    """Run the block on an engine made of `kernels` alone, each taking every call it supports."""
    name = "forced:" + "+".join(k.__qualname__ for k in kernels)
    policy.register(name, kernels, forced=True)
    with cv.use_engine(name):
        yield


def run_with_grads(fn: Callable[..., cv.Tensor], arrays: Sequence[np.ndarray | None], dtype: np.dtype,
                   upstream_seed: int = 0) -> list[np.ndarray]:
    """[output, grad of each input] of fn(*tensors) with a fixed random upstream gradient."""
    tensors = [None if a is None else cv.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]
    y = fn(*tensors)
    g = np.random.default_rng(upstream_seed).standard_normal(y.shape).astype(dtype)
    y.backward(cv.tensor(g))
    return [y.numpy()] + [t.grad.numpy() for t in tensors if t is not None]


def assert_engine_equals_reference(got: Sequence[np.ndarray], want: Sequence[np.ndarray], dtype: np.dtype) -> None:
    """float64: 1e-12, float32: 1e-5, relative to the largest magnitude of each array (output and every gradient)."""
    rtol = 1e-12 if np.dtype(dtype) == np.float64 else 1e-5
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype, (i, a.shape, b.shape, a.dtype, b.dtype)
        scale = max(float(np.abs(b).max()), 1e-30)
        err = float(np.abs(a - b).max())
        assert err <= rtol * scale, f"array {i} (0 = output): max error {err:.3g} > {rtol:g} x {scale:.3g}"
