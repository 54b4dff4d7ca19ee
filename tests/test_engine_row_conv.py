"""The Numba row convolution forced on: equal to the reference conv2d (forward, dX, dW, db) in float64 (1e-12)
and float32 (1e-5) on random stride-1 shapes, on 1 and 2 threads, and to PyTorch on LeNet-5's C1."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch.nn.functional as TF

import convolve as cv
import convolve.nn.functional as F
from convolve.engines.compiled.row_conv import RowConv2d
from convolve.engines.policy import policy
from convolve.nn.functional.conv import Conv2dFunction
from tests import engine_helpers
from tests.oracle import compare_with_torch

pytest.importorskip("numba")

ENGINE = "row_test"
KERNEL = "convolve.engines.compiled.row_conv:RowConv2d"
rng = np.random.default_rng(21)
GEOMETRY = {"stride": (1, 1), "padding": ((0, 0), (0, 0)), "dilation": (1, 1), "groups": 1}


@pytest.fixture
def row() -> Iterator[None]:
    """Every call the row kernel supports runs on it (the rest on the reference)."""
    policy.register(ENGINE, [KERNEL], forced=True)
    with cv.use_engine(ENGINE):
        yield


def _case(seed: int) -> tuple[dict, list[np.ndarray | None]]:
    """A random supported call: batch 1-3, C 1-6, K 1-8, kernel 1-7 (each side), padding below the kernel size
    (asymmetric too), with or without bias."""
    r = np.random.default_rng(seed)
    kh, kw = int(r.integers(1, 8)), int(r.integers(1, 8))
    pads = ((int(r.integers(0, kh)), int(r.integers(0, kh))), (int(r.integers(0, kw)), int(r.integers(0, kw))))
    h = int(r.integers(max(1, kh - pads[0][0] - pads[0][1]), 15))
    w = int(r.integers(max(1, kw - pads[1][0] - pads[1][1]), 15))
    n, c, k = int(r.integers(1, 4)), int(r.integers(1, 7)), int(r.integers(1, 9))
    bias = r.standard_normal(k) if r.random() < 0.5 else None
    return {"pads": pads}, [r.standard_normal((n, c, h, w)), r.standard_normal((k, c, kh, kw)), bias]


def _run(engine: str, geom: dict, arrays: list, dtype: np.dtype) -> list[np.ndarray]:
    with cv.use_engine(engine):
        return engine_helpers.run_with_grads(lambda x, w, b=None: F.conv2d(x, w, b, padding=geom["pads"]), arrays,
                                             dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(24))
def test_equals_reference_on_random_shapes(seed: int, dtype: np.dtype) -> None:
    geom, arrays = _case(seed)
    policy.register(ENGINE, [KERNEL], forced=True)
    got, want = _run(ENGINE, geom, arrays, dtype), _run("reference", geom, arrays, dtype)
    engine_helpers.assert_engine_equals_reference(got, want, dtype)


def test_kernel_takes_the_calls(row: None) -> None:
    x, w = rng.standard_normal((2, 1, 12, 12)), rng.standard_normal((6, 1, 5, 5))
    assert policy.select(Conv2dFunction, x, w, None, **GEOMETRY) is RowConv2d
    for unsupported in ({"groups": 2}, {"dilation": (2, 2)}, {"stride": (2, 2)}, {"padding": ((5, 5), (0, 0))}):
        assert not RowConv2d.supports(x, w, None, **{**GEOMETRY, **unsupported})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch_on_lenet_c1(row: None, dtype: np.dtype) -> None:
    x, w, b = rng.standard_normal((3, 1, 32, 32)), rng.standard_normal((6, 1, 5, 5)), rng.standard_normal(6)
    compare_with_torch(lambda a, ww, bb: F.conv2d(a, ww, bb), lambda a, ww, bb: TF.conv2d(a, ww, bb), [x, w, b],
                       dtype)


def test_two_threads_equal_reference_and_are_reproducible() -> None:
    """40 images, 2 threads (forward: 9 guided chunks); dW (per-chunk sums in chunk order) is the same run to run."""
    x, w = rng.standard_normal((40, 2, 12, 12)), rng.standard_normal((4, 2, 5, 5))
    geom = {"pads": ((2, 2), (2, 2))}
    policy.register(ENGINE, [KERNEL], forced=True)
    cv.set_num_threads(2)
    try:
        first = _run(ENGINE, geom, [x, w, None], np.float32)
        second = _run(ENGINE, geom, [x, w, None], np.float32)
    finally:
        cv.set_num_threads(None)
    engine_helpers.assert_engine_equals_reference(first, _run("reference", geom, [x, w, None], np.float32),
                                                  np.float32)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_nan_and_inf_propagate_like_the_reference(row: None) -> None:
    x, w = rng.standard_normal((2, 1, 10, 10)), rng.standard_normal((6, 1, 5, 5))
    x[0, 0, 2, 2], x[1, 0, 7, 4] = np.nan, np.inf
    got = _run(ENGINE, {"pads": ((0, 0), (0, 0))}, [x, w, None], np.float32)
    want = _run("reference", {"pads": ((0, 0), (0, 0))}, [x, w, None], np.float32)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b))


def test_prefers_few_channel_layers_of_a_batch() -> None:
    """LeNet-5's C1 at batch 128 (float32 and float64); not C3 (6 x 16 channels), not a small batch (Numba stays
    unloaded for small jobs)."""
    def prefers(n: int, c: int, k: int, h: int = 32, dtype: type = np.float32) -> bool:
        x, w = np.zeros((n, c, h, h), dtype), np.zeros((k, c, 5, 5), dtype)
        return RowConv2d.prefers(x, w, None, **GEOMETRY)

    assert prefers(128, 1, 6) and prefers(128, 1, 6, dtype=np.float64)
    assert not any([prefers(128, 6, 16, h=14), prefers(4, 1, 6)])
