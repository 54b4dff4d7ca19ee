"""Helpers shared by the model tests: a one-BLAS-thread autouse fixture and a parameter count.

Use: `from tests.model_helpers import n_params, one_blas_thread  # noqa: F401 (autouse fixture)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from convolve import nn

try:  # BLAS threads spin at barriers on this shared 2-core machine; one thread is up to 10x faster here
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread() -> Iterator[None]:
    """Hold BLAS to one thread for the whole test module that imports this fixture."""
    with threadpool_limits(1) if threadpool_limits is not None else contextlib.nullcontext():
        yield


def n_params(module: nn.Module) -> int:
    """Number of trainable scalars (parameters only, not buffers)."""
    return sum(p.numel() for p in module.parameters())
