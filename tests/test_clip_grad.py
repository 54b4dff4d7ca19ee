"""`nn.utils.clip_grad_norm_` / `clip_grad_value_` / `get_total_norm` / `clip_grads_with_norm_` against PyTorch:
same returned norm and same clipped gradients for random shapes, dtypes, norm orders and thresholds."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
from convolve.nn.utils import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from tests.oracle import assert_close

NORMS = [2.0, 1.0, 3.0, 0.5, math.inf, -math.inf, 0.0, "inf"]


def twins(grads: list[np.ndarray | None], dtype: type) -> tuple[list[cv.Tensor], list[torch.Tensor]]:
    """The same parameters for both libraries, with the given gradients (None: the parameter has none)."""
    ours, theirs = [], []
    for g in grads:
        zeros = np.zeros((2,) if g is None else g.shape, dtype=dtype)
        p, t = cv.tensor(zeros, requires_grad=True), torch.from_numpy(zeros.copy()).requires_grad_()
        if g is not None:
            g = np.asarray(g, dtype=dtype)
            p.grad, t.grad = cv.tensor(g), torch.from_numpy(g.copy())
        ours.append(p)
        theirs.append(t)
    return ours, theirs


def assert_same_grads(ours: list[cv.Tensor], theirs: list[torch.Tensor], dtype: type) -> None:
    for i, (p, t) in enumerate(zip(ours, theirs)):
        if t.grad is None:
            assert p.grad is None
        else:
            assert p.grad.dtype == np.dtype(dtype)
            assert_close(p.grad.numpy(), t.grad.numpy(), dtype, f"grad {i}")


@settings(max_examples=40, deadline=None)
@given(shapes=st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=4),
       missing=st.lists(st.booleans(), min_size=4, max_size=4), norm=st.sampled_from(NORMS),
       max_norm=st.sampled_from([0.0, 0.01, 0.5, 2.0, 1e6]), dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 2**16))
def test_clip_grad_norm_matches_torch(shapes, missing, norm, max_norm, dtype, seed) -> None:
    rng = np.random.default_rng(seed)
    grads = [None if gone and i else np.asarray(rng.standard_normal(s) * 3)  # the first always has one
             for i, (s, gone) in enumerate(zip(shapes, missing))]
    ours, theirs = twins(grads, dtype)
    total = clip_grad_norm_(ours, max_norm, norm_type=norm)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm)
    assert total.shape == () and total.dtype == np.dtype(dtype)
    assert_close(total.numpy(), expected.numpy(), dtype, "total norm")
    assert_same_grads(ours, theirs, dtype)


def test_clip_grad_norm_scales_to_the_threshold() -> None:
    """A gradient of norm 5 (3-4-5) clipped at 2 has norm 2 afterwards; below the threshold nothing changes."""
    p = cv.zeros(2, dtype=np.float64, requires_grad=True)
    p.grad = cv.tensor(np.array([3.0, 4.0]))
    assert clip_grad_norm_(p, 2.0).item() == 5.0
    np.testing.assert_allclose(p.grad.numpy(), [3.0 * 2 / (5 + 1e-6), 4.0 * 2 / (5 + 1e-6)], rtol=1e-15)
    before = p.grad.numpy().copy()
    clip_grad_norm_([p], 10.0)
    np.testing.assert_array_equal(p.grad.numpy(), before)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_norm(bad: float) -> None:
    grads = [np.array([1.0, bad]), np.array([2.0])]
    ours, theirs = twins(grads, np.float64)
    with pytest.raises(RuntimeError, match="non-finite") as ours_err:
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as torch_err:
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    assert str(ours_err.value) == str(torch_err.value)
    total = clip_grad_norm_(ours, 1.0)  # default: scaled by the non-finite norm anyway, as PyTorch
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert_close(total.numpy(), expected.numpy(), np.float64, "total norm")
    assert_same_grads(ours, theirs, np.float64)


@pytest.mark.parametrize("foreach", [None, True, False])
def test_foreach_changes_nothing(foreach: bool | None) -> None:
    grads = [np.arange(6.0).reshape(2, 3) - 2, np.array([7.0])]
    ours, theirs = twins(grads, np.float32)
    total = clip_grad_norm_(ours, 1.5, foreach=foreach)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.5, foreach=foreach)
    assert_close(total.numpy(), expected.numpy(), np.float32, "total norm")
    assert_same_grads(ours, theirs, np.float32)
    clip_grad_value_(ours, 0.1, foreach=foreach)
    torch.nn.utils.clip_grad_value_(theirs, 0.1, foreach=foreach)
    assert_same_grads(ours, theirs, np.float32)


def test_empty_inputs() -> None:
    assert clip_grad_norm_([], 1.0).item() == torch.nn.utils.clip_grad_norm_([], 1.0).item() == 0.0
    assert clip_grad_norm_([], 1.0).dtype == np.float32
    no_grad = cv.zeros(3, requires_grad=True)
    assert clip_grad_norm_([no_grad], 1.0).item() == 0.0 and no_grad.grad is None
    with pytest.warns(UserWarning, match="empty generator"):
        clip_grad_norm_((p for p in []), 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clip_grad_value_((p for p in []), 1.0)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=0, max_size=3), clip=st.sampled_from([0.0, 0.3, 1.0, 100.0]),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
def test_clip_grad_value_matches_torch(shape, clip, dtype, seed) -> None:
    grads = [np.random.default_rng(seed).standard_normal(shape), None]
    ours, theirs = twins(grads, dtype)
    assert clip_grad_value_(ours, clip) is None
    torch.nn.utils.clip_grad_value_(theirs, clip)
    assert_same_grads(ours, theirs, dtype)


def test_total_norm_then_clip_equals_clip_grad_norm() -> None:
    """PyTorch's two-step API (get_total_norm, clip_grads_with_norm_) gives what clip_grad_norm_ gives."""
    grads = [np.array([[1.0, -2.0], [0.5, 4.0]]), np.array([-3.0])]
    ours, theirs = twins(grads, np.float64)
    total = get_total_norm([p.grad for p in ours], 3.0)
    expected = torch.nn.utils.get_total_norm([t.grad for t in theirs], 3.0)
    assert_close(total.numpy(), expected.numpy(), np.float64, "total norm")
    clip_grads_with_norm_(ours, 1.0, total)
    torch.nn.utils.clip_grads_with_norm_(theirs, 1.0, expected)
    assert_same_grads(ours, theirs, np.float64)


def test_bad_arguments() -> None:
    p = cv.zeros(2, requires_grad=True)
    p.grad = cv.ones(2)
    with pytest.raises(ValueError, match=r"`max_norm` must be >= 0, got -1"):
        clip_grad_norm_(p, -1)  # PyTorch would flip the gradients' sign
    with pytest.raises(ValueError, match="`max_norm` must be >= 0, got nan"):
        clip_grad_norm_(p, float("nan"))
    with pytest.raises(ValueError, match="`clip_value` must be >= 0"):
        clip_grad_value_(p, -0.5)
    with pytest.raises(TypeError, match="`max_norm` must be a number, got '2'"):
        clip_grad_norm_(p, "2")
    with pytest.raises(TypeError, match="`norm_type` must be a number or 'inf', got 'two'"):
        clip_grad_norm_(p, 1.0, norm_type="two")
    with pytest.raises(TypeError, match="`foreach` must be None, True or False, got 1"):
        clip_grad_norm_(p, 1.0, foreach=1)
    with pytest.raises(TypeError, match="`error_if_nonfinite` must be True or False"):
        clip_grad_norm_(p, 1.0, error_if_nonfinite="yes")
    with pytest.raises(TypeError, match=r"`parameters\[1\]` must be a Tensor, got ndarray"):
        clip_grad_value_([p, np.ones(2)], 1.0)
    with pytest.raises(TypeError, match="`parameters` must be a Tensor or an iterable of Tensors, got float"):
        clip_grad_norm_(1.0, 1.0)
    np.testing.assert_array_equal(p.grad.numpy(), [1.0, 1.0])  # every failed call left the gradient alone


def test_model_parameters_and_namespace() -> None:
    """`model.parameters()` (a generator) works, and the functions live where PyTorch users look."""
    assert cv.nn.utils.clip_grad_norm_ is clip_grad_norm_
    model = cv.nn.Linear(3, 2)
    model(cv.randn(4, 3)).sum().backward()
    total = clip_grad_norm_(model.parameters(), 0.1)
    assert total.item() > 0.1
    after = math.sqrt(sum(float((p.grad.numpy().astype(np.float64) ** 2).sum()) for p in model.parameters()))
    assert after == pytest.approx(0.1, rel=1e-5)
