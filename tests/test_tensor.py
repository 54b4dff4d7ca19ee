"""Tensor and autograd core: dtypes, arithmetic and broadcasting, reductions, shape ops, graph walk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
from convolve.testing import GradcheckError, gradcheck
from tests.oracle import compare_with_torch

DTYPES = [np.float64, np.float32]
rng = np.random.default_rng(0)


def test_dtype_rules_follow_pytorch():
    assert cv.tensor([1.0, 2.0]).dtype == np.float32
    assert cv.tensor(np.ones(3)).dtype == np.float64
    assert cv.tensor([1, 2]).dtype == np.int64
    x = cv.tensor(np.ones(3, np.float32))
    assert (x * 2.5).dtype == np.float32  # a Python scalar does not upcast


def test_default_dtype_can_be_changed():
    cv.set_default_dtype(np.float64)
    try:
        assert cv.tensor([1.0]).dtype == np.float64
    finally:
        cv.set_default_dtype(np.float32)
    with pytest.raises(TypeError, match="floating"):
        cv.set_default_dtype(np.int32)


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        cv.tensor([1, 2], requires_grad=True)


def test_gradients_accumulate_and_no_grad_records_nothing():
    x = cv.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])
    with cv.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None


def test_backward_needs_gradient_for_non_scalar():
    x = cv.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="`gradient` must be given"):
        (x * 2).backward()


def test_diamond_graph_sums_both_paths():
    x = cv.tensor(np.array(3.0), requires_grad=True)
    a = x * x
    (a + a * x).backward()  # d/dx (x^2 + x^3) = 2x + 3x^2
    assert x.grad.item() == pytest.approx(2 * 3 + 3 * 9)


def test_deep_graph_does_not_hit_recursion_limit():
    x = cv.tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0


BINARY = {
    "add": (lambda a, b: a + b),
    "sub": (lambda a, b: a - b),
    "mul": (lambda a, b: a * b),
    "div": (lambda a, b: a / (b.abs() + 1)),
    "pow": (lambda a, b: (a.abs() + 0.5) ** b),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(BINARY))
@settings(max_examples=15, deadline=None)
@given(
    shapes=st.sampled_from([((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)), ((), (2, 2))])
)
def test_broadcasting_binary_ops_match_torch(name, dtype, shapes):
    fn = BINARY[name]
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    compare_with_torch(fn, fn, [a, b], dtype)


UNARY = {
    "exp": (lambda x: x.exp(), lambda x: x.exp()),
    "log": (lambda x: (x.abs() + 0.1).log(), lambda x: (x.abs() + 0.1).log()),
    "sqrt": (lambda x: (x.abs() + 0.1).sqrt(), lambda x: (x.abs() + 0.1).sqrt()),
    "neg": (lambda x: -x, lambda x: -x),
    "clamp": (lambda x: x.clamp(-0.5, 0.5), lambda x: x.clamp(-0.5, 0.5)),
    "sum_axis": (lambda x: x.sum(axis=1), lambda x: x.sum(dim=1)),
    "sum_keep": (lambda x: x.sum(axis=(0, 2), keepdims=True), lambda x: x.sum(dim=(0, 2), keepdim=True)),
    "mean": (lambda x: x.mean(axis=-1), lambda x: x.mean(dim=-1)),
    "mean_all": (lambda x: x.mean(), lambda x: x.mean()),
    "max_axis": (lambda x: x.max(axis=1), lambda x: x.amax(dim=1)),
    "max_all": (lambda x: x.max(), lambda x: x.amax()),
    "var": (lambda x: x.var(axis=0), lambda x: x.var(dim=0)),
    "reshape": (lambda x: x.reshape(6, -1), lambda x: x.reshape(6, -1)),
    "permute": (lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    "transpose": (lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2)),
    "index": (lambda x: x[1:, ::2, 0], lambda x: x[1:, ::2, 0]),
    "fancy_index": (lambda x: x[[0, 1, 1, 2]], lambda x: x[[0, 1, 1, 2]]),
    "flatten": (lambda x: x.flatten(1), lambda x: x.flatten(1)),
    "unsqueeze": (lambda x: x.unsqueeze(1), lambda x: x.unsqueeze(1)),
    "expand": (lambda x: x[:, :1].expand(3, 4, 2), lambda x: x[:, :1].expand(3, 4, 2)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_and_shape_ops_match_torch(name, dtype):
    ours, theirs = UNARY[name]
    compare_with_torch(ours, theirs, [rng.standard_normal((3, 4, 2))], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((2, 3, 4), (4, 5)),
                                    ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul_matches_torch(shapes, dtype):
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    compare_with_torch(lambda x, y: x @ y, lambda x, y: x @ y, [a, b], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cat_and_stack_match_torch(dtype):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 5))
    compare_with_torch(lambda x, y: cv.cat([x, y], dim=1), lambda x, y: torch.cat([x, y], dim=1), [a, b], dtype)
    c = rng.standard_normal((2, 3))
    compare_with_torch(lambda x, y: cv.stack([x, y], 1), lambda x, y: torch.stack([x, y], 1), [a, c], dtype)


def test_cat_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"tensors\[1\]` has shape \(3, 3\)"):
        cv.cat([cv.zeros(2, 3), cv.zeros(3, 3)], dim=1)


def test_gradcheck_passes_on_correct_op_and_catches_a_wrong_one():
    x = cv.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    assert gradcheck(lambda t: (t * t).sum(axis=1), [x])

    class WrongSquare(cv.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, grad):
            (a,) = ctx.saved
            return (grad * a,)  # missing the factor 2

    with pytest.raises(GradcheckError, match="gradient of input 0"):
        gradcheck(WrongSquare.apply, [x])


def test_manual_seed_makes_randn_reproducible():
    cv.manual_seed(7)
    a = cv.randn(3, 3).numpy().copy()
    cv.manual_seed(7)
    np.testing.assert_array_equal(a, cv.randn(3, 3).numpy())
