"""Autograd semantics a user relies on: type promotion, in-place safety, graph freeing, PyTorch-shaped APIs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import convolve as cv
import convolve.nn as nn
from convolve.testing import gradcheck


def test_integer_tensor_with_python_float_promotes_like_pytorch():
    t = cv.tensor([1, 2, 3])
    np.testing.assert_allclose((t * 0.5).numpy(), [0.5, 1.0, 1.5])
    assert (t * 0.5).dtype == np.float32 and (t + 0.5).dtype == np.float32
    assert (t / 2).dtype == np.float32  # true division of integers gives the default float
    assert (t * 2).dtype == np.int64


def test_integer_and_float32_tensors_stay_float32():
    w = cv.tensor(np.ones(3, np.float32), requires_grad=True)
    mask = cv.tensor(np.array([1, 0, 1]))
    y = w * mask
    assert y.dtype == np.float32
    y.sum().backward()
    y = w * mask
    y.sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad.numpy(), [2, 0, 2])
    assert (w * np.array(2.0)).dtype == np.float32  # a 0-d float64 array acts like a scalar


def test_in_place_write_to_a_saved_tensor_is_an_error_not_a_wrong_gradient():
    a = cv.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = a.exp()  # Exp saves its output for backward
    z = y.sum()
    y[0] = 0.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.backward()
    t = cv.nn.functional.tanh(a)  # tanh saves its output, which an in-place relu then overwrites
    cv.nn.functional.relu(t, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        t.sum().backward()
    u = a * 2.0  # Mul saved a and the scalar, not u: an in-place relu on u is fine (as in PyTorch)
    v = cv.nn.functional.relu(u, inplace=True)
    v.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0])


def test_batchnorm_without_affine_then_inplace_relu_matches_torch():
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5))
    ours = nn.Sequential(nn.BatchNorm2d(3, affine=False), nn.ReLU(inplace=True)).double()
    theirs = torch.nn.Sequential(torch.nn.BatchNorm2d(3, affine=False), torch.nn.ReLU(inplace=True)).double()
    xc, xt = cv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g = np.random.default_rng(1).standard_normal(x.shape)
    ours(xc).backward(cv.tensor(g))
    theirs(xt).backward(torch.tensor(g))
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-7, atol=1e-9)


def test_graph_is_freed_after_backward_unless_retained():
    x = cv.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2 + 4 * 1, 4 + 4 * 2])  # 3 backward passes of 2x


def test_np_array_of_a_tensor_is_a_copy():
    t = cv.tensor(np.zeros(3))
    a = np.array(t)
    a[0] = 99
    assert t.numpy()[0] == 0
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":  # NumPy 2's copy=False asks for the shared array
        assert np.asarray(t, copy=False) is t.numpy()


def test_max_with_dim_returns_values_and_indices():
    x = cv.tensor(np.array([[1.0, 3.0], [2.0, 0.5]]))
    values, indices = x.max(1)
    np.testing.assert_array_equal(values.numpy(), [3.0, 2.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    np.testing.assert_array_equal(x.min(0).values.numpy(), [1.0, 0.5])
    assert x.max().item() == 3.0
    np.testing.assert_array_equal(x.max(axis=1).numpy(), [3.0, 2.0])  # NumPy-style axis: values only


def test_pow_gradient_at_zero_exponent_is_zero():
    x = cv.tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


def test_cast_to_integer_ends_the_graph():
    a = cv.tensor(np.array([1.5, 2.5]), requires_grad=True)
    assert not a.to(np.int64).requires_grad


def test_gradcheck_handles_non_contiguous_inputs():
    x = cv.tensor(np.random.default_rng(0).standard_normal((4, 3)).T, requires_grad=True)
    assert not x.numpy().flags.c_contiguous
    assert gradcheck(lambda t: (t * t).sum(axis=0), [x])


def test_grad_mode_is_per_thread():
    seen = []
    inside, release = threading.Event(), threading.Event()

    def worker():
        with cv.no_grad():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait(5)
    seen.append(cv.is_grad_enabled())
    release.set()
    thread.join()
    assert seen == [True]


def test_dimension_errors_name_the_argument():
    x = cv.zeros(2, 3)
    with pytest.raises(ValueError, match=r"unsqueeze: `dim` \(5\) is out of range"):
        x.unsqueeze(5)
    with pytest.raises(ValueError, match=r"flatten: `start_dim` \(3\) is out of range"):
        x.flatten(3)
    with pytest.raises(ValueError, match=r"cat: `dim` \(5\) is out of range"):
        cv.cat([x, x], dim=5)
    with pytest.raises(TypeError, match="mean: `input` must be a floating-point tensor"):
        cv.tensor([1, 2]).mean()


def test_zero_dim_reductions_accept_dim_0_and_minus_1():
    s = cv.tensor(np.array(3.0), requires_grad=True)
    assert s.sum(0).item() == 3.0 and s.mean(-1).item() == 3.0


def test_factories_infer_dtype_like_pytorch():
    assert cv.arange(0.0, 1.0, 0.25).dtype == np.float32
    assert cv.arange(5).dtype == np.int64
    assert cv.full((2,), 3).dtype == np.int64
    assert cv.full((2,), 3.0).dtype == np.float32


def test_basic_slicing_gradient_matches_fancy_path():
    x = cv.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    x[1:, ::2].sum().backward()
    expected = np.zeros((3, 4))
    expected[1:, ::2] = 1
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_batch_norm_refuses_mixed_dtypes():
    x = cv.tensor(np.ones((2, 3), np.float32))
    w = cv.tensor(np.ones(3))
    with pytest.raises(TypeError, match=r"batch_norm: `weight` has dtype float64 but `input` is float32"):
        cv.nn.functional.batch_norm(x, None, None, weight=w, training=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_top_level_functions_match_torch(dtype):
    from tests.oracle import compare_with_torch

    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    b[1] = a[0, 1]  # a tie for maximum/minimum: the gradient is split
    compare_with_torch(cv.maximum, torch.maximum, [a, b], dtype)
    compare_with_torch(cv.minimum, torch.minimum, [a, b], dtype)
    compare_with_torch(lambda x, y: cv.where(x > y, x, y), lambda x, y: torch.where(x > y, x, y), [a, b], dtype)
    compare_with_torch(lambda x: cv.exp(cv.clamp(x, -1, 1)).sum(dim=1),
                       lambda x: torch.exp(torch.clamp(x, -1, 1)).sum(dim=1), [a], dtype)
    compare_with_torch(lambda x, y: cv.concatenate([x, y[None, :]]), lambda x, y: torch.cat([x, y[None, :]]),
                       [a, b], dtype)


def test_where_needs_a_boolean_condition():
    with pytest.raises(TypeError, match="where: `condition` must be a boolean tensor"):
        cv.where(cv.tensor([1, 0]), cv.zeros(2), cv.ones(2))


def test_list_of_index_tensors_acts_as_a_tuple_index():
    x = cv.tensor(np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(x[[cv.tensor([0, 1]), cv.tensor([2, 0])]].numpy(), [2.0, 4.0])


def test_class_weights_must_not_require_grad():
    logits, target = cv.zeros(2, 3), cv.tensor([0, 1])
    with pytest.raises(ValueError, match=r"cross_entropy: `weight` .* must not require grad"):
        cv.nn.functional.cross_entropy(logits, target, weight=cv.ones(3, requires_grad=True))
