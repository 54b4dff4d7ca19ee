"""Suite-wide settings: BLAS held to one thread, so that small test ops don't pay for thread wake-ups and a
loaded machine doesn't make two spinning BLAS threads collapse (benchmarks/RESULTS.md). Numerics are unaffected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import convolve as cv

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl is in the test extra
    threadpool_limits = None


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread() -> Iterator[None]:
    if threadpool_limits is None:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(params=["fast", "reference"])
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test under each engine (the oracle suites of the op families that have engine kernels use it)."""
    with cv.use_engine(request.param):
        yield request.param
