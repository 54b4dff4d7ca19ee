"""The Winograd F(2x2, 3x3) conv2d engine forced on, against PyTorch (forward, dX, dW, db; float64 and float32)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.nn.functional as F
from convolve.engines import winograd
from convolve.engines.gemm_nhwc import GemmConv2d
from convolve.engines.policy import policy
from convolve.engines.winograd import WinogradConv2d
from convolve.nn.functional.conv import Conv2dFunction
from convolve.testing import gradcheck
from tests import engine_helpers
from tests.oracle import compare_with_torch

rng = np.random.default_rng(7)
SWEEP = settings(max_examples=30, deadline=None)


@contextmanager
def forced(budget: int | None = None, threads: int | None = None) -> Iterator[list]:
    """Every ungrouped 3x3 stride-1 layer on the Winograd kernel; yields the list of the kernel's calls."""
    calls: list = []

    class Counting(WinogradConv2d):
        @staticmethod
        def fill_forward(x, *args):
            calls.append(x.shape)
            WinogradConv2d.fill_forward(x, *args)

        @staticmethod
        def fill_backward(x, grad, *args):
            calls.append(grad.shape)
            return WinogradConv2d.fill_backward(x, grad, *args)

    with pytest.MonkeyPatch.context() as mp:
        if budget is not None:
            mp.setattr(winograd, "TILES_BUDGET_BYTES", budget)
        cv.set_num_threads(threads)
        try:
            with engine_helpers.forced(Counting, GemmConv2d):
                yield calls
        finally:
            cv.set_num_threads(None)


@st.composite
def cases(draw):
    """(x, w, b, padding, dtype): odd and even sizes, padding 0-3 (3: dX crops dY), tuples and 'same', batch 1-3."""
    n, c, k = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    padding = draw(st.sampled_from([0, 1, 2, 3, (0, 2), (2, 1), (3, 0), "same", "valid"]))
    per_axis = {"same": (1, 1), "valid": (0, 0)}.get(padding, padding) if isinstance(padding, str) else padding
    pad_h, pad_w = (per_axis, per_axis) if isinstance(per_axis, int) else per_axis
    h, w = draw(st.integers(max(1, 3 - 2 * pad_h), 9)), draw(st.integers(max(1, 3 - 2 * pad_w), 9))
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((k, c, 3, 3))
    b = rng.standard_normal(k) if draw(st.booleans()) else None
    return x, weight, b, padding, draw(st.sampled_from([np.float64, np.float32]))


def _check(x, w, b, padding, dtype):
    """Compare conv2d's output and every gradient with torch's."""
    if b is None:
        compare_with_torch(lambda a, c: F.conv2d(a, c, padding=padding),
                           lambda a, c: TF.conv2d(a, c, padding=padding), [x, w], dtype)
    else:
        compare_with_torch(lambda a, c, d: F.conv2d(a, c, d, padding=padding),
                           lambda a, c, d: TF.conv2d(a, c, d, padding=padding), [x, w, b], dtype)


@SWEEP
@given(cases())
def test_winograd_matches_torch(case):
    with forced() as calls:
        _check(*case)
    assert len(calls) == 2  # forward, and backward (dX as the Winograd conv of dY, dW in the Winograd domain)


@settings(max_examples=15, deadline=None)
@given(cases())
def test_winograd_one_image_chunks_two_threads(case):
    with forced(budget=1, threads=2):  # one image per chunk: workspace reuse, zero borders kept across chunks
        _check(*case)


@pytest.mark.parametrize("shape", [(4, 128, 8, 8), (2, 64, 16, 16), (1, 256, 5, 7)])
def test_winograd_float32_realistic_magnitudes(shape):
    """He-initialised filters on unit-variance input: float32 output and dX within the oracle's rtol 1e-4, atol 1e-5.

    dW sums N*H*W products (|dW| up to ~90 here), so neither engine nor torch's float32 meets atol 1e-5 on its
    near-zero entries; Winograd's dW error against the float64 result must stay within 1.5x the im2col engine's.
    """
    c = shape[1]
    local = np.random.default_rng(shape)  # its own draws: the hypothesis tests above consume `rng` unevenly
    x = local.standard_normal(shape)
    weight = local.standard_normal((c, c, 3, 3)) * np.sqrt(2.0 / (9 * c))
    b = local.standard_normal(c) * 0.1
    with forced() as calls:
        compare_with_torch(lambda a, d, e: F.conv2d(a, d, e, padding=1),
                           lambda a, d, e: TF.conv2d(a, d, e, padding=1), [x, weight.astype(np.float32), b], np.float32,
                           grad=[True, False, True])
    assert calls
    gy = local.standard_normal(shape)
    dw = {e: _weight_grad(x, weight, gy, np.float32, e) for e in ("winograd", "gemm")}
    exact = _weight_grad(x, weight, gy, np.float64, "gemm")
    err = {e: np.abs(d - exact).max() for e, d in dw.items()}
    assert err["winograd"] <= 1.5 * err["gemm"] + 1e-6
    assert err["winograd"] <= 1e-5 * np.abs(exact).max()


def _weight_grad(x, weight, gy, dtype, engine):
    """dW of conv2d(x, weight, padding=1) for upstream gradient gy, in `dtype`, on the 'winograd' or 'gemm' kernel."""
    with engine_helpers.forced(WinogradConv2d if engine == "winograd" else GemmConv2d):
        wt = cv.tensor(weight.astype(dtype), requires_grad=True)
        F.conv2d(cv.tensor(x.astype(dtype)), wt, padding=1).backward(cv.tensor(gy.astype(dtype)))
    return wt.grad.numpy().astype(np.float64)


def test_winograd_gradcheck():
    x = cv.tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True)
    w = cv.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    b = cv.tensor(rng.standard_normal(3), requires_grad=True)
    with forced() as calls:
        assert gradcheck(lambda a, c, d: F.conv2d(a, c, d, padding=(2, 1)), [x, w, b])
    assert calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_keeps_dtype(dtype):
    x = cv.tensor(rng.standard_normal((1, 3, 6, 6)).astype(dtype), requires_grad=True)
    w = cv.tensor(rng.standard_normal((2, 3, 3, 3)).astype(dtype), requires_grad=True)
    with forced():
        y = F.conv2d(x, w, padding=1)
        y.sum().backward()
    assert y.dtype == x.grad.dtype == w.grad.dtype == dtype


@pytest.mark.parametrize("c, weight_shape, groups, stride, dilation, expected", [
    (128, (128, 128, 3, 3), 1, (1, 1), (1, 1), True),
    (256, (256, 256, 3, 3), 1, (1, 1), (1, 1), True),
    (64, (64, 64, 3, 3), 1, (1, 1), (1, 1), False),
    (128, (128, 128, 3, 3), 1, (2, 2), (1, 1), False),
    (128, (128, 128, 3, 3), 1, (1, 1), (2, 2), False),
    (128, (128, 64, 3, 3), 2, (1, 1), (1, 1), False),
    (128, (128, 128, 5, 5), 1, (1, 1), (1, 1), False),
    (128, (16, 128, 3, 3), 1, (1, 1), (1, 1), False),
])
def test_selection_rule(c, weight_shape, groups, stride, dilation, expected):
    x, w = np.empty((1, c, 8, 8)), np.empty(weight_shape)
    kwargs = dict(stride=stride, padding=((1, 1), (1, 1)), dilation=dilation, groups=groups)
    with cv.use_engine("fast"):
        assert (policy.select(Conv2dFunction, x, w, None, **kwargs) is WinogradConv2d) == expected
    with cv.use_engine("reference"):
        assert policy.select(Conv2dFunction, x, w, None, **kwargs) is Conv2dFunction
