"""The whole-window kernel (a filter as large as the input: one GEMM) forced on: equal to the reference conv2d
(forward, dX, dW, db) in float64 (1e-12) and float32 (1e-5) on random shapes, and to PyTorch on LeNet-5's C5."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF

import convolve as cv
import convolve.nn.functional as F
from convolve.engines.policy import policy
from convolve.engines.whole_window import WholeWindowConv2d
from convolve.nn.functional.conv import Conv2dFunction
from tests.engine_helpers import assert_engine_equals_reference, forced, run_with_grads
from tests.oracle import compare_with_torch

GEOMETRY = {"stride": (1, 1), "padding": ((0, 0), (0, 0)), "dilation": (1, 1), "groups": 1}


def _conv(x, w, b=None):
    return F.conv2d(x, w, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(12))
def test_equals_reference_on_random_shapes(seed: int, dtype: np.dtype) -> None:
    r = np.random.default_rng(seed)
    n, c, k, h, w = (int(v) for v in r.integers(1, [5, 9, 13, 7, 7], endpoint=True))
    bias = r.standard_normal(k) if seed % 2 else None
    arrays = [r.standard_normal((n, c, h, w)), r.standard_normal((k, c, h, w))] + ([bias] if bias is not None else [])
    with cv.use_engine("reference"):
        want = run_with_grads(_conv, arrays, dtype)
    with forced(WholeWindowConv2d):
        got = run_with_grads(_conv, arrays, dtype)
    assert_engine_equals_reference(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch_on_lenet_c5(dtype: np.dtype) -> None:
    r = np.random.default_rng(5)
    x, w, b = r.standard_normal((4, 16, 5, 5)), r.standard_normal((120, 16, 5, 5)), r.standard_normal(120)
    with forced(WholeWindowConv2d):
        compare_with_torch(lambda a, ww, bb: F.conv2d(a, ww, bb), lambda a, ww, bb: TF.conv2d(a, ww, bb), [x, w, b],
                           dtype)


def test_takes_only_whole_window_calls() -> None:
    x, w = np.zeros((2, 16, 5, 5)), np.zeros((120, 16, 5, 5))
    assert policy.select(Conv2dFunction, x, w, None, **GEOMETRY) is WholeWindowConv2d  # the "fast" engine's choice
    for other in ({"padding": ((1, 1), (1, 1))}, {"dilation": (2, 2)}, {"groups": 2}):
        weight = w[:, :8] if "groups" in other else w
        assert not WholeWindowConv2d.supports(x, weight, None, **{**GEOMETRY, **other})
    assert not WholeWindowConv2d.supports(np.zeros((2, 16, 6, 6)), w, None, **GEOMETRY)  # a 2x2 output
