"""Activations vs PyTorch: forward and gradient in float64/float32, gradcheck, large logits, conventions, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.nn.functional as F
from convolve.nn.functional.activation import erf
from convolve.testing import gradcheck
from tests.oracle import compare_with_torch

DTYPES = [np.float64, np.float32]
rng = np.random.default_rng(0)

ELEMENTWISE = {
    "relu": (F.relu, TF.relu),
    "relu6": (F.relu6, TF.relu6),
    "leaky_relu": (F.leaky_relu, TF.leaky_relu),
    "leaky_relu_0.2": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "elu": (F.elu, TF.elu),
    "elu_alpha": (lambda x: F.elu(x, alpha=0.7), lambda x: TF.elu(x, alpha=0.7)),
    "elu_negative_alpha": (lambda x: F.elu(x, alpha=-0.5), lambda x: TF.elu(x, alpha=-0.5)),
    "leaky_relu_negative": (lambda x: F.leaky_relu(x, -0.3), lambda x: TF.leaky_relu(x, -0.3)),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "tanh": (F.tanh, torch.tanh),
    "gelu": (F.gelu, TF.gelu),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    "silu": (F.silu, TF.silu),
}
SHAPES = st.sampled_from([(1,), (5,), (1, 3), (2, 7), (1, 2, 3, 3), (3, 2, 4, 5)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@settings(max_examples=8, deadline=None)
@given(shape=SHAPES, scale=st.sampled_from([1.0, 4.0]))
def test_elementwise_activations_match_torch(name, dtype, shape, scale):
    ours, theirs = ELEMENTWISE[name]
    compare_with_torch(ours, theirs, [scale * rng.standard_normal(shape)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@settings(max_examples=15, deadline=None)
@given(shape=st.sampled_from([(1, 1), (1, 5), (4, 3), (2, 3, 4), (1, 3, 2, 2), (7,)]), data=st.data())
def test_softmax_family_matches_torch_on_every_dim(name, dtype, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    ours, theirs = getattr(F, name), getattr(TF, name)
    compare_with_torch(lambda x: ours(x, dim), lambda x: theirs(x, dim), [3 * rng.standard_normal(shape)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_is_finite_and_exact_for_huge_logits(name, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]])
    ours, theirs = getattr(F, name), getattr(TF, name)
    out = ours(cv.tensor(x.astype(dtype)), dim=1).numpy()
    assert np.all(np.isfinite(out)) if name == "log_softmax" else not np.any(np.isnan(out))
    compare_with_torch(lambda t: ours(t, 1), lambda t: theirs(t, 1), [x], dtype)
    if name == "log_softmax":
        np.testing.assert_array_equal(out[0], np.array([0.0, -2e4, -1e4], dtype=dtype))


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_gradcheck(name):
    x = cv.tensor(rng.standard_normal((2, 3)) * 3 + 0.01, requires_grad=True)  # away from the kinks
    assert gradcheck(ELEMENTWISE[name][0], [x])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_family_gradcheck(name, dim):
    x = cv.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(lambda t: getattr(F, name)(t, dim), [x])


@pytest.mark.parametrize(("ours", "theirs"), [(F.relu, TF.relu), (F.relu6, TF.relu6)])
def test_gradient_at_the_kinks_follows_pytorch(ours, theirs):
    x = np.array([0.0, 6.0, -1.0, 3.0])
    compare_with_torch(ours, theirs, [x])
    t = cv.tensor(x, requires_grad=True)
    F.relu(t).sum().backward()
    assert t.grad.numpy()[0] == 0.0  # d relu/dx at 0 is 0


def test_dtype_is_kept():
    for fn in (F.relu, F.sigmoid, F.gelu, F.silu, lambda t: F.softmax(t, 0), lambda t: F.log_softmax(t, 0)):
        assert fn(cv.tensor(np.ones(3, np.float32))).dtype == np.float32


@pytest.mark.parametrize(("ours", "theirs"), [
    (lambda x: F.relu(x, inplace=True), lambda x: TF.relu(x, inplace=True)),
    (lambda x: F.relu6(x, inplace=True), lambda x: TF.relu6(x, inplace=True)),
    (lambda x: F.leaky_relu(x, 0.1, inplace=True), lambda x: TF.leaky_relu(x, 0.1, inplace=True)),
    (lambda x: F.elu(x, 0.5, inplace=True), lambda x: TF.elu(x, 0.5, inplace=True)),
])
def test_inplace_overwrites_input_and_keeps_gradient(ours, theirs):
    x = rng.standard_normal((3, 4)) * 3
    compare_with_torch(lambda t: ours(t * 1.0), lambda t: theirs(t * 1.0), [x])
    a = cv.tensor(x) * 1.0
    out = ours(a)
    assert np.shares_memory(out.numpy(), a.numpy())
    np.testing.assert_allclose(a.numpy(), theirs(torch.tensor(x)).numpy())


def test_inplace_on_leaf_requiring_grad_is_refused():
    with pytest.raises(RuntimeError, match=r"relu: `inplace=True` on a leaf tensor"):
        F.relu(cv.tensor(np.ones(2), requires_grad=True), inplace=True)


def test_erf_matches_math_erf():
    x = np.concatenate([np.linspace(-7, 7, 2001), [0.0, 1.0, -1.0, 8.0, -30.0, 50.0]])
    ref = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf(x), ref, rtol=1e-15, atol=1e-16)
    assert erf(x.astype(np.float32)).dtype == np.float32


def test_errors():
    x = cv.tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"softmax: `dim` must be an int"):
        F.softmax(x)
    with pytest.raises(ValueError, match=r"log_softmax: `dim` must be in \[-2, 1\] for a 2-D input, got 2"):
        F.log_softmax(x, 2)
    with pytest.raises(ValueError, match=r"gelu: `approximate` must be 'none' or 'tanh', got 'erf'"):
        F.gelu(x, approximate="erf")
    with pytest.raises(TypeError, match=r"relu: `input` must be a floating-point tensor, got dtype int64"):
        F.relu(cv.tensor([1, 2]))
    with pytest.raises(TypeError, match=r"sigmoid: `input` must be a convolve Tensor, got ndarray"):
        F.sigmoid(np.ones(3))
