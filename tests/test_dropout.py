"""Dropout: statistics of the mask, 1/(1-p) scaling, same mask in backward, eval identity, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.nn.functional as F
from convolve.testing import gradcheck
from tests.oracle import compare_with_torch

rng = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_drops_a_fraction_p_and_scales_survivors(p, dtype):
    x = cv.tensor(np.ones((400, 250), dtype))
    y = F.dropout(x, p, generator=cv.Generator(0)).numpy()
    assert y.dtype == dtype
    dropped = np.mean(y == 0)
    assert abs(dropped - p) < 0.01  # 100,000 draws: the standard error is < 0.0016
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-6)
    assert abs(y.mean() - 1) < 0.05  # inverted dropout keeps the expectation


@settings(max_examples=20, deadline=None)
@given(shape=st.sampled_from([(1, 3), (4, 5), (2, 3, 4, 4)]), p=st.floats(0.05, 0.95))
def test_backward_uses_the_forward_mask(shape, p):
    x = cv.tensor(rng.standard_normal(shape) + 5, requires_grad=True)  # no zeros in x
    y = F.dropout(x, p)
    g = rng.standard_normal(shape)
    y.backward(cv.tensor(g))
    mask = y.numpy() / x.numpy()  # 0 or 1/(1-p) per element
    assert set(np.round(np.unique(mask), 6)) <= {0.0, round(1 / (1 - p), 6)}
    np.testing.assert_allclose(x.grad.numpy(), g * mask, rtol=1e-12)


def test_eval_mode_and_p0_are_identity_and_p1_gives_zeros():
    x = rng.standard_normal((3, 4))
    compare_with_torch(lambda t: F.dropout(t, 0.5, training=False), lambda t: TF.dropout(t, 0.5, training=False), [x])
    compare_with_torch(lambda t: F.dropout(t, 0.0), lambda t: TF.dropout(t, 0.0), [x])
    compare_with_torch(lambda t: F.dropout(t, 1.0), lambda t: TF.dropout(t, 1.0), [x])
    x4 = rng.standard_normal((2, 3, 2, 2))
    compare_with_torch(lambda t: F.dropout2d(t, 1.0), lambda t: TF.dropout2d(t, 1.0), [x4])
    t = cv.tensor(x)
    assert F.dropout(t, 0.5, training=False) is t


def test_seeding_makes_masks_reproducible():
    x = cv.tensor(np.ones((10, 10)))
    cv.manual_seed(123)
    a = F.dropout(x).numpy()
    cv.manual_seed(123)
    np.testing.assert_array_equal(a, F.dropout(x).numpy())
    assert not np.array_equal(a, F.dropout(x).numpy())  # the generator advanced
    g1, g2 = cv.Generator(7), cv.Generator(7)
    np.testing.assert_array_equal(F.dropout(x, generator=g1).numpy(), F.dropout(x, generator=g2).numpy())


def test_gradcheck():
    x = cv.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(lambda t: F.dropout(t, 0.3, generator=cv.Generator(1)), [x])
    x4 = cv.tensor(rng.standard_normal((2, 3, 2, 2)), requires_grad=True)
    assert gradcheck(lambda t: F.dropout2d(t, 0.5, generator=cv.Generator(2)), [x4])


@pytest.mark.parametrize(("fn", "shape", "spatial"), [
    (F.dropout2d, (8, 50, 3, 4), 2), (F.dropout2d, (200, 3, 4), 2),
    (F.dropout1d, (8, 50, 5), 1), (F.dropout1d, (200, 5), 1),
])
def test_channel_dropout_zeroes_whole_channels(fn, shape, spatial):
    y = fn(cv.tensor(np.ones(shape)), 0.4, generator=cv.Generator(3)).numpy()
    per_channel = y.reshape(*shape[: len(shape) - spatial], -1)
    assert np.all(per_channel.min(axis=-1) == per_channel.max(axis=-1))  # each channel all 0 or all 1/(1-p)
    assert abs(np.mean(per_channel[..., 0] == 0) - 0.4) < 0.06
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.6])


def test_inplace():
    x = cv.tensor(np.ones((4, 4))) * 1.0
    y = F.dropout(x, 0.5, inplace=True)
    assert np.shares_memory(x.numpy(), y.numpy())
    with pytest.raises(RuntimeError, match=r"dropout: `inplace=True` on a leaf tensor that requires grad"):
        F.dropout(cv.tensor(np.ones(3), requires_grad=True), inplace=True)


def test_errors():
    x = cv.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dropout: `p` must be in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError, match=r"dropout: `p` must be in \[0, 1\], got -0.1"):
        F.dropout(x, -0.1)
    with pytest.raises(ValueError, match=r"dropout2d: `input` must be 4-D or 3-D \(N, C, H, W\) or \(C, H, W\), "
                                         r"got 2-D with shape \(2, 3\)"):
        F.dropout2d(x)
    with pytest.raises(ValueError, match=r"dropout1d: `input` must be 3-D or 2-D \(N, C, L\) or \(C, L\)"):
        F.dropout1d(cv.tensor(np.ones(3)))
    with pytest.raises(TypeError, match=r"dropout: `input` must be a floating-point tensor, got dtype int64"):
        F.dropout(cv.tensor([1, 2]))
