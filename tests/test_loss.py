"""Losses vs PyTorch: cross_entropy over every flag combination, nll/mse/bce, huge logits, gradcheck, errors."""

from __future__ import annotations

import itertools

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
REDUCTIONS = ["mean", "sum", "none"]
rng = np.random.default_rng(0)
C = 4
SHAPES = [(5, C), (1, C), (2, C, 3, 2), (C,)]  # (N, C), batch 1, spatial, unbatched


def _targets(shape, ignore_index):
    """Class indices for `input` of `shape`, with `ignore_index` placed in about a third of the samples."""
    sample = () if len(shape) == 1 else (shape[0], *shape[2:])
    y = rng.integers(0, C, sample)
    if ignore_index is not None and y.size > 1:
        y.flat[:: 3] = ignore_index
    return y


def _ce(ignore_index, reduction, label_smoothing, torch_side):
    fn = TF.cross_entropy if torch_side else F.cross_entropy

    def run(x, y, *w):
        kw = dict(reduction=reduction, label_smoothing=label_smoothing)
        if ignore_index is not None:
            kw["ignore_index"] = ignore_index
        return fn(x, y, weight=w[0] if w else None, **kw)

    return run


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("ignore_index", [None, -100, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_indices_every_flag(weighted, ignore_index, label_smoothing, reduction, dtype):
    flags = (ignore_index, reduction, label_smoothing)
    for shape in SHAPES:
        x = 2 * rng.standard_normal(shape)
        y = _targets(shape, ignore_index)
        arrays, grad = [x, y], [True, False]
        if weighted:
            arrays.append((rng.random(C) + 0.2).astype(dtype))
            grad.append(False)
        ours, theirs = _ce(*flags, torch_side=False), _ce(*flags, torch_side=True)
        compare_with_torch(ours, theirs, arrays, dtype, grad=grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("reduction", "label_smoothing", "weighted"),
                         list(itertools.product(REDUCTIONS, [0.0, 0.2], [False, True])))
def test_cross_entropy_probability_targets(reduction, label_smoothing, weighted, dtype):
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    for shape in SHAPES:
        x = rng.standard_normal(shape)
        t = rng.random(shape)
        t /= t.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
        arrays, grad = [x, t], [True, True]  # gradients of both input and target
        if weighted:
            arrays.append((rng.random(C) + 0.2).astype(dtype))
            grad.append(False)
        compare_with_torch(lambda a, b, *w: F.cross_entropy(a, b, *w, **kw),
                           lambda a, b, *w: TF.cross_entropy(a, b, *w, **kw), arrays, dtype, grad=grad)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 7), spatial=st.sampled_from([(), (1,), (3,), (2, 2)]),
       reduction=st.sampled_from(REDUCTIONS), label_smoothing=st.sampled_from([0.0, 0.05, 0.5]),
       ignore=st.booleans())
def test_cross_entropy_hypothesis_shapes(dtype, n, c, spatial, reduction, label_smoothing, ignore):
    x = 3 * rng.standard_normal((n, c, *spatial))
    y = rng.integers(0, c, (n, *spatial))
    if ignore:
        y.flat[0] = -100
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    compare_with_torch(lambda a, b: F.cross_entropy(a, b, **kw), lambda a, b: TF.cross_entropy(a, b, **kw),
                       [x, y], dtype, grad=[True, False])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_huge_logits_stay_finite(reduction, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]])
    y = np.array([1, 2, 0])
    for eps in (0.0, 0.1):
        kw = dict(reduction=reduction, label_smoothing=eps)
        out = F.cross_entropy(cv.tensor(x.astype(dtype)), cv.tensor(y), **kw)
        assert np.all(np.isfinite(out.numpy()))
        compare_with_torch(lambda a, b, kw=kw: F.cross_entropy(a, b, **kw),
                           lambda a, b, kw=kw: TF.cross_entropy(a, b, **kw), [x, y], dtype, grad=[True, False])


def test_cross_entropy_all_ignored_gives_nan_like_torch():
    x, y = rng.standard_normal((3, 4)), np.full(3, -100)
    compare_with_torch(F.cross_entropy, TF.cross_entropy, [x, y], grad=[True, False])  # nan loss, zero grad
    assert F.cross_entropy(cv.tensor(x), cv.tensor(y), reduction="sum").item() == 0.0


def test_cross_entropy_equals_log_softmax_then_nll():
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    a = F.cross_entropy(cv.tensor(x), cv.tensor(y)).item()
    b = F.nll_loss(F.log_softmax(cv.tensor(x), 1), cv.tensor(y)).item()
    assert a == pytest.approx(b, rel=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("weighted", "ignore_index"), [(False, None), (True, None), (True, 1), (False, -100)])
def test_nll_loss_matches_torch(weighted, ignore_index, reduction, dtype):
    for shape in SHAPES:
        x, y = rng.standard_normal(shape), _targets(shape, ignore_index)
        arrays, grad = [x, y], [True, False]
        if weighted:
            arrays.append((rng.random(C) + 0.2).astype(dtype))
            grad.append(False)
        kw = dict(reduction=reduction)
        if ignore_index is not None:
            kw["ignore_index"] = ignore_index
        compare_with_torch(lambda a, b, *w, kw=kw: F.nll_loss(a, b, *w, **kw),
                           lambda a, b, *w, kw=kw: TF.nll_loss(a, b, *w, **kw), arrays, dtype, grad=grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=6, deadline=None)
@given(shape=st.sampled_from([(1,), (3, 4), (1, 2, 3), (2, 3, 2, 2)]))
def test_mse_and_bce_match_torch(reduction, dtype, shape):
    x, t = 3 * rng.standard_normal(shape), rng.random(shape)
    compare_with_torch(lambda a, b: F.mse_loss(a, b, reduction), lambda a, b: TF.mse_loss(a, b, reduction=reduction),
                       [x, t], dtype)
    compare_with_torch(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction),
                       lambda a, b: TF.binary_cross_entropy_with_logits(a, b, reduction=reduction), [x, t], dtype)
    p = rng.random(shape) * 0.9 + 0.05
    compare_with_torch(lambda a, b: F.binary_cross_entropy(a, b, reduction=reduction),
                       lambda a, b: TF.binary_cross_entropy(a, b, reduction=reduction), [p, t], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_weights_and_extreme_logits(dtype):
    x = np.array([[50.0, -50.0, 0.3], [-200.0, 200.0, -1.0]])
    t = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 1.0]])
    w, pw = rng.random((2, 1)) + 0.5, rng.random(3) + 0.5
    compare_with_torch(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, cv.tensor(w.astype(dtype)),
                                                        pos_weight=cv.tensor(pw.astype(dtype))),
        lambda a, b: TF.binary_cross_entropy_with_logits(a, b, torch.tensor(w.astype(dtype)),
                                                         pos_weight=torch.tensor(pw.astype(dtype))), [x, t], dtype)
    p = np.array([[0.0, 1.0, 0.3], [1.0, 0.2, 0.999]], dtype)  # log clamped at -100 as PyTorch
    compare_with_torch(lambda a, b: F.binary_cross_entropy(a, b, cv.tensor(w.astype(dtype))),
                       lambda a, b: TF.binary_cross_entropy(a, b, torch.tensor(w.astype(dtype))), [p, t], dtype,
                       grad=[False, True])


def test_gradcheck_all_losses():
    x = cv.tensor(rng.standard_normal((3, 4, 2)), requires_grad=True)
    y = cv.tensor(np.array([[0, 3], [-100, 1], [2, 2]]))
    w = cv.tensor(rng.random(4) + 0.5)
    assert gradcheck(lambda a: F.cross_entropy(a, y, w, label_smoothing=0.2, reduction="none"), [x])
    assert gradcheck(lambda a: F.cross_entropy(a, y, w, label_smoothing=0.1), [x])
    assert gradcheck(lambda a: F.nll_loss(a, y, w, reduction="sum"), [x])
    t = cv.tensor(rng.random((3, 4, 2)), requires_grad=True)
    assert gradcheck(lambda a, b: F.cross_entropy(a, b, w, label_smoothing=0.3), [x, t])
    assert gradcheck(lambda a, b: F.mse_loss(a, b, "none"), [x, t])
    assert gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, pos_weight=cv.tensor(np.full(2, 2.0))),
                     [x, t])
    p = cv.tensor(rng.random((3, 2)) * 0.8 + 0.1, requires_grad=True)
    assert gradcheck(lambda a, b: F.binary_cross_entropy(a, b, reduction="sum"), [p, cv.tensor(rng.random((3, 2)))])


def test_cross_entropy_errors():
    x = cv.tensor(np.zeros((4, 10)))
    with pytest.raises(ValueError, match=r"cross_entropy: `target` values must be in \[0, C\) = \[0, 10\), got 12"):
        F.cross_entropy(x, cv.tensor([1, 12, 3, 4]))
    with pytest.raises(ValueError, match=r"cross_entropy: `target` values must be in \[0, C\) = \[0, 10\), got -1"):
        F.cross_entropy(x, cv.tensor([1, -1, 3, 4]))
    with pytest.raises(TypeError, match=r"cross_entropy: `target` must hold integer class indices .* got dtype bool"):
        F.cross_entropy(x, cv.tensor(np.array([True, False, True, True])))
    with pytest.raises(ValueError, match=r"cross_entropy: `target` of class indices must have shape \(4,\) \(`input` "
                                         r"shape \(4, 10\) without the class dim\), got \(3,\)"):
        F.cross_entropy(x, cv.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"cross_entropy: `target` of class probabilities must have the shape of "
                                         r"`input` \(4, 10\), got \(4,\)"):
        F.cross_entropy(x, cv.tensor(np.zeros(4)))
    with pytest.raises(TypeError, match=r"cross_entropy: `target` dtype float32 must equal `input` dtype float64"):
        F.cross_entropy(x, cv.tensor(np.zeros((4, 10), np.float32)))
    with pytest.raises(ValueError, match=r"cross_entropy: `ignore_index` is not supported for class-probability"):
        F.cross_entropy(x, cv.tensor(np.zeros((4, 10))), ignore_index=0)
    with pytest.raises(ValueError, match=r"cross_entropy: `reduction` must be one of 'mean', 'sum', 'none', "
                                         r"got 'avg'"):
        F.cross_entropy(x, cv.tensor([1, 2, 3, 4]), reduction="avg")
    with pytest.raises(ValueError, match=r"cross_entropy: `label_smoothing` must be in \[0, 1\], got 1.5"):
        F.cross_entropy(x, cv.tensor([1, 2, 3, 4]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"cross_entropy: `weight` must have shape \(10,\) \(one weight per class\)"):
        F.cross_entropy(x, cv.tensor([1, 2, 3, 4]), weight=cv.tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"cross_entropy: `input` must be \(N, C\), \(N, C, d1, ...\) or \(C,\)"):
        F.cross_entropy(cv.tensor(np.array(1.0)), cv.tensor(np.array(0)))
    with pytest.raises(TypeError, match=r"cross_entropy: `target` must be a convolve Tensor, got list"):
        F.cross_entropy(x, [1, 2, 3, 4])


def test_other_loss_errors():
    x = cv.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"nll_loss: `target` values must be in \[0, C\) = \[0, 3\), got 3"):
        F.nll_loss(x, cv.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"mse_loss: `target` shape \(3,\) must equal `input` shape \(2, 3\)"):
        F.mse_loss(x, cv.tensor(np.zeros(3)))
    with pytest.raises(ValueError, match=r"mse_loss: `reduction` must be one of"):
        F.mse_loss(x, x, reduction="batchmean")
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: `pos_weight` shape \(2,\) must broadcast"):
        F.binary_cross_entropy_with_logits(x, x, pos_weight=cv.tensor(np.ones(2)))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: `input` values must be probabilities in \[0, 1\]"):
        F.binary_cross_entropy(cv.tensor(np.full((2, 3), 1.5)), x)
