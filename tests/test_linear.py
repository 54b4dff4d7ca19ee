"""linear and flatten vs PyTorch: forward and every gradient, any leading dims, gradcheck, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.nn.functional as F
from convolve.testing import gradcheck
from tests.oracle import compare_with_torch

DTYPES = [np.float64, np.float32]
rng = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(lead=st.sampled_from([(), (1,), (4,), (2, 3), (1, 2, 2)]), fin=st.integers(1, 6), fout=st.integers(1, 5),
       with_bias=st.booleans())
def test_linear_matches_torch(dtype, lead, fin, fout, with_bias):
    x, w, b = rng.standard_normal((*lead, fin)), rng.standard_normal((fout, fin)), rng.standard_normal(fout)
    if with_bias:
        compare_with_torch(F.linear, TF.linear, [x, w, b], dtype)
    else:
        compare_with_torch(F.linear, TF.linear, [x, w], dtype)


def test_linear_only_some_inputs_need_grad():
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(2)
    compare_with_torch(F.linear, TF.linear, [x, w, b], grad=[False, True, True])
    compare_with_torch(F.linear, TF.linear, [x, w, b], grad=[True, False, False])


def test_linear_gradcheck():
    x = cv.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    w = cv.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    b = cv.tensor(rng.standard_normal(4), requires_grad=True)
    assert gradcheck(F.linear, [x, w, b])
    assert gradcheck(lambda t, u: F.linear(t, u), [x, w])


def test_linear_errors():
    x, w = cv.tensor(np.ones((2, 3))), cv.tensor(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"linear: the last dimension of `input` \(shape \(2, 5\)\) must equal "
                                         r"in_features = 3 of `weight` \(shape \(4, 3\)\)"):
        F.linear(cv.tensor(np.ones((2, 5))), w)
    with pytest.raises(ValueError, match=r"linear: `weight` must be 2-D \(out_features, in_features\)"):
        F.linear(x, cv.tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"linear: `bias` must have shape \(4,\), got \(3,\)"):
        F.linear(x, w, cv.tensor(np.ones(3)))
    with pytest.raises(TypeError, match=r"linear: `input` dtype float32 must equal `weight` dtype float64"):
        F.linear(cv.tensor(np.ones((2, 3), np.float32)), w)
    with pytest.raises(TypeError, match=r"linear: `bias` dtype float32 must equal `weight` dtype float64"):
        F.linear(x, w, cv.tensor(np.ones(4, np.float32)))


@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from([(), (3,), (2, 3), (1, 2, 3, 4), (2, 1, 3)]), data=st.data())
def test_flatten_matches_torch(shape, data):
    n = max(len(shape), 1)
    start = data.draw(st.integers(-n, n - 1))
    end = data.draw(st.integers(-n, n - 1))
    if start % n > end % n:
        with pytest.raises(ValueError, match="flatten: `start_dim`"):
            F.flatten(cv.tensor(np.ones(shape)), start, end)
        return
    compare_with_torch(lambda t: F.flatten(t, start, end), lambda t: torch.flatten(t, start, end),
                       [rng.standard_normal(shape)])


def test_flatten_defaults_and_errors():
    assert F.flatten(cv.tensor(np.ones((2, 3, 4)))).shape == (24,)
    assert F.flatten(cv.tensor(np.ones((2, 3, 4))), 1).shape == (2, 12)
    with pytest.raises(ValueError, match=r"flatten: `start_dim` \(2\) must not come after `end_dim` \(1\)"):
        F.flatten(cv.tensor(np.ones((2, 3, 4))), 2, 1)
    with pytest.raises(ValueError, match=r"flatten: `end_dim` must be an int in \[-3, 2\] for a 3-D input, got 3"):
        F.flatten(cv.tensor(np.ones((2, 3, 4))), 0, 3)
