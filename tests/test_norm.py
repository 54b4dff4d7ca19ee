"""batch_norm, layer_norm, local_response_norm vs PyTorch: outputs, all gradients, running stats, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.engines.batchnorm as norm
import convolve.nn.functional as F
from convolve.testing import gradcheck
from tests.oracle import assert_close, compare_with_torch

DTYPES = [np.float64, np.float32]
rng = np.random.default_rng(0)
BN_SHAPES = [(2, 3), (5, 1), (1, 3, 4), (3, 2, 5), (1, 2, 3, 3), (4, 3, 2, 5)]


def _running(c, dtype):
    mean, var = rng.standard_normal(c).astype(dtype), (rng.random(c) + 0.5).astype(dtype)
    return (cv.tensor(mean), cv.tensor(var)), (torch.tensor(mean), torch.tensor(var))


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None)
@given(shape=st.sampled_from(BN_SHAPES), training=st.booleans(), affine=st.booleans(),
       momentum=st.sampled_from([0.1, 0.5, 1.0]))
def test_batch_norm_matches_torch_including_running_stats(dtype, shape, training, affine, momentum):
    c = shape[1]
    (rm, rv), (trm, trv) = _running(c, dtype)
    x = 2 * rng.standard_normal(shape) + 1
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    if affine:
        compare_with_torch(lambda t, u, v: F.batch_norm(t, rm, rv, u, v, training, momentum),
                           lambda t, u, v: TF.batch_norm(t, trm, trv, u, v, training, momentum), [x, w, b], dtype)
    else:
        compare_with_torch(lambda t: F.batch_norm(t, rm, rv, training=training, momentum=momentum),
                           lambda t: TF.batch_norm(t, trm, trv, training=training, momentum=momentum), [x], dtype)
    assert_close(rm.numpy(), trm.numpy(), dtype, "running_mean")
    assert_close(rv.numpy(), trv.numpy(), dtype, "running_var")


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_running_stats_after_several_steps_then_eval(dtype):
    (rm, rv), (trm, trv) = _running(3, dtype)
    for _ in range(4):
        x = rng.standard_normal((4, 3, 2, 2)).astype(dtype) * 3 + 2
        F.batch_norm(cv.tensor(x), rm, rv, training=True)
        TF.batch_norm(torch.tensor(x), trm, trv, training=True)
    assert_close(rm.numpy(), trm.numpy(), dtype, "running_mean")
    assert_close(rv.numpy(), trv.numpy(), dtype, "running_var")
    x = rng.standard_normal((2, 3, 2, 2))
    compare_with_torch(lambda t: F.batch_norm(t, rm, rv), lambda t: TF.batch_norm(t, trm, trv), [x], dtype)


@pytest.mark.usefixtures("engine")
def test_batch_norm_without_running_stats_and_under_no_grad():
    x = rng.standard_normal((4, 3))
    compare_with_torch(lambda t: F.batch_norm(t, None, None, training=True),
                       lambda t: TF.batch_norm(t, None, None, training=True), [x])
    (rm, rv), (trm, trv) = _running(3, np.float64)
    with cv.no_grad():
        F.batch_norm(cv.tensor(x), rm, rv, training=True)
    TF.batch_norm(torch.tensor(x), trm, trv, training=True)
    assert_close(rm.numpy(), trm.numpy(), np.float64, "running_mean")
    assert_close(rv.numpy(), trv.numpy(), np.float64, "running_var")


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(training):
    x = cv.tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    w = cv.tensor(rng.standard_normal(2), requires_grad=True)
    b = cv.tensor(rng.standard_normal(2), requires_grad=True)
    rm, rv = cv.tensor(np.zeros(2)), cv.tensor(np.ones(2))
    assert gradcheck(lambda t, u, v: F.batch_norm(t, rm, rv, u, v, training=training, momentum=0.0), [x, w, b])


@pytest.mark.parametrize("row_bytes", [0, 1 << 20])  # per-channel operands as (1, C, 1) broadcasts / repeated rows
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=12, deadline=None)
@given(shape=st.sampled_from([(1, 2, 3, 3), (4, 3, 2, 5), (3, 2, 5), (2, 4)]), training=st.booleans(),
       grads=st.sampled_from([(True, True, True), (True, False, False), (False, True, False), (False, False, True)]))
def test_batch_norm_operand_layouts_and_gradient_subsets(row_bytes, dtype, shape, training, grads):
    c = shape[1]
    (rm, rv), (trm, trv) = _running(c, dtype)
    x, w, b = (a.astype(dtype) for a in (2 * rng.standard_normal(shape) - 1, rng.standard_normal(c),
                                         rng.standard_normal(c)))  # cast: inputs without a gradient are kept as is
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(norm, "_ROW_BYTES", row_bytes)
        compare_with_torch(lambda t, u, v: F.batch_norm(t, rm, rv, u, v, training),
                           lambda t, u, v: TF.batch_norm(t, trm, trv, u, v, training), [x, w, b], dtype, grad=grads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3, 4, 2), (3, 2, 7), (6, 4), (3, 2, 2, 3, 2)])
def test_batch_norm_in_chunks_of_samples_on_threads(threads, dtype, shape):
    """One sample per chunk (as a big batch would be split), chunks over 1 or 2 threads."""
    c = shape[1]
    x, w, b = 3 * rng.standard_normal(shape) + 2, rng.standard_normal(c), rng.standard_normal(c)
    (rm, rv), (trm, trv) = _running(c, dtype)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(norm, "_CHUNK_BYTES", 1)
        cv.set_num_threads(threads)
        try:
            compare_with_torch(lambda t, u, v: F.batch_norm(t, rm, rv, u, v, training=True),
                               lambda t, u, v: TF.batch_norm(t, trm, trv, u, v, training=True), [x, w, b], dtype)
        finally:
            cv.set_num_threads(None)
    assert_close(rm.numpy(), trm.numpy(), dtype, "running_mean")
    assert_close(rv.numpy(), trv.numpy(), dtype, "running_var")


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_non_contiguous_input(dtype, training):
    (rm, rv), (trm, trv) = _running(3, dtype)
    x, w, b = rng.standard_normal((2, 4, 5, 3)), rng.standard_normal(3), rng.standard_normal(3)  # NHWC, permuted
    compare_with_torch(lambda t, u, v: F.batch_norm(t.permute(0, 3, 1, 2), rm, rv, u, v, training),
                       lambda t, u, v: TF.batch_norm(t.permute(0, 3, 1, 2), trm, trv, u, v, training), [x, w, b],
                       dtype)


@pytest.mark.usefixtures("engine")
def test_batch_norm_float32_with_a_large_mean_stays_accurate():
    """Variance and sum(dy * x_hat) come from centred values, not E[x^2] - mean^2 (which loses ~all digits here)."""
    x = (50 + rng.standard_normal((8, 3, 6, 6))).astype(np.float32)
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    compare_with_torch(lambda t, u, v: F.batch_norm(t, None, None, u, v, training=True),
                       lambda t, u, v: TF.batch_norm(t, None, None, u, v, training=True), [x, w, b], np.float32)


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("seed", [5, 194])
def test_batch_norm_float32_mean_near_50_is_rounded_once(seed: int) -> None:
    """Batches whose float32 mean came out an ulp or two off when it was summed per sample in float32 and rounded
    before the division (11 of 400 such batches failed then: the weight gradient, here seed 5, or the output, seed
    194, outside PyTorch's tolerance; none now)."""
    r = np.random.default_rng(seed)
    x = (50 + r.standard_normal((8, 3, 6, 6))).astype(np.float32)
    w, b = r.standard_normal(3), r.standard_normal(3)
    compare_with_torch(lambda t, u, v: F.batch_norm(t, None, None, u, v, training=True),
                       lambda t, u, v: TF.batch_norm(t, None, None, u, v, training=True), [x, w, b], np.float32)


@pytest.mark.usefixtures("engine")
def test_batch_norm_backward_twice_with_retain_graph_and_in_place_write_caught():
    x = cv.tensor(rng.standard_normal((4, 3, 2, 2)), requires_grad=True)
    w = cv.tensor(rng.standard_normal(3), requires_grad=True)
    g = cv.tensor(rng.standard_normal((4, 3, 2, 2)))
    y = F.batch_norm(x, None, None, w, training=True)
    y.backward(g, retain_graph=True)
    first_x, first_w = x.grad.numpy().copy(), w.grad.numpy().copy()
    y.backward(g)  # backward must not have overwritten what it saved
    np.testing.assert_allclose(x.grad.numpy(), 2 * first_x, rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), 2 * first_w, rtol=1e-12)
    h = x * 1.0
    y = F.batch_norm(h, None, None, w, training=True)
    h.zero_()
    with pytest.raises(RuntimeError, match=r"(BatchNormFunction|ChunkedBatchNorm).backward: a tensor saved for"):
        y.backward(g)


def test_batch_norm_errors():
    x = cv.tensor(np.ones((2, 3, 4)))
    rm, rv = cv.tensor(np.zeros(3)), cv.tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"batch_norm: `weight` must have shape \(3,\) \(one value per channel\), "
                                         r"got \(4,\)"):
        F.batch_norm(x, rm, rv, weight=cv.tensor(np.ones(4)))
    with pytest.raises(ValueError, match=r"batch_norm: `running_mean` must have shape \(3,\)"):
        F.batch_norm(x, cv.tensor(np.zeros(2)), rv)
    with pytest.raises(ValueError, match=r"batch_norm: `running_mean` and `running_var` are required when "
                                         r"training=False"):
        F.batch_norm(x, None, None)
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel when training"):
        F.batch_norm(cv.tensor(np.ones((1, 3))), rm, rv, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: `input` must be 2-D to 5-D \(N, C, \*\), got 1-D"):
        F.batch_norm(cv.tensor(np.ones(3)), rm, rv)
    with pytest.raises(ValueError, match=r"batch_norm: `eps` must be positive, got 0"):
        F.batch_norm(x, rm, rv, eps=0)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None)
@given(case=st.sampled_from([((3, 4), (4,)), ((1, 5), 5), ((2, 3, 4), (3, 4)), ((2, 3, 2, 2), (2, 2)),
                             ((1, 2, 3), (2, 3))]), affine=st.booleans())
def test_layer_norm_matches_torch(dtype, case, affine):
    shape, ns = case
    nshape = (ns,) if isinstance(ns, int) else ns
    x = 3 * rng.standard_normal(shape) - 1
    if affine:
        w, b = rng.standard_normal(nshape), rng.standard_normal(nshape)
        compare_with_torch(lambda t, u, v: F.layer_norm(t, ns, u, v), lambda t, u, v: TF.layer_norm(t, nshape, u, v),
                           [x, w, b], dtype)
    else:
        compare_with_torch(lambda t: F.layer_norm(t, ns), lambda t: TF.layer_norm(t, nshape), [x], dtype)


def test_layer_norm_gradcheck_and_errors():
    x = cv.tensor(rng.standard_normal((2, 3, 2)), requires_grad=True)
    w = cv.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    b = cv.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    assert gradcheck(lambda t, u, v: F.layer_norm(t, (3, 2), u, v), [x, w, b])
    with pytest.raises(ValueError, match=r"layer_norm: `normalized_shape` \(3,\) must equal the trailing dims"):
        F.layer_norm(x, 3)
    with pytest.raises(ValueError, match=r"layer_norm: `weight` must have shape normalized_shape = \(2,\), got \(3,\)"):
        F.layer_norm(x, 2, weight=cv.tensor(np.ones(3)))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(shape=st.sampled_from([(1, 5, 3), (2, 7, 3, 2), (1, 3, 2, 2), (2, 4, 2, 1, 2), (3, 1, 4)]),
       size=st.integers(1, 8), alpha=st.sampled_from([1e-4, 0.5, 2.0]), beta=st.sampled_from([0.75, 0.5, 1.3]),
       k=st.sampled_from([1.0, 2.0]))
def test_local_response_norm_matches_torch(dtype, shape, size, alpha, beta, k):
    x = 2 * rng.standard_normal(shape)
    compare_with_torch(lambda t: F.local_response_norm(t, size, alpha, beta, k),
                       lambda t: TF.local_response_norm(t, size, alpha, beta, k), [x], dtype)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_local_response_norm_gradcheck(size):
    x = cv.tensor(rng.standard_normal((2, 6, 2, 2)), requires_grad=True)
    assert gradcheck(lambda t: F.local_response_norm(t, size, alpha=0.5, beta=0.75, k=1.0), [x])


def test_local_response_norm_reproduces_the_alexnet_paper_with_alpha_times_n():
    """Paper: b_c = a_c / (k + alpha * sum_{|c'-c| <= n/2} a_c'^2)^beta with k=2, n=5, alpha=1e-4, beta=0.75."""
    x = 10 * rng.standard_normal((2, 8, 3, 3))
    n, alpha, beta, k = 5, 1e-4, 0.75, 2.0
    expected = np.empty_like(x)
    for c in range(8):  # the paper's formula, literally
        lo, hi = max(0, c - n // 2), min(7, c + n // 2)
        expected[:, c] = x[:, c] / (k + alpha * (x[:, lo : hi + 1] ** 2).sum(axis=1)) ** beta
    ours = F.local_response_norm(cv.tensor(x), size=n, alpha=alpha * n, beta=beta, k=k).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    default = F.local_response_norm(cv.tensor(x), size=n, alpha=alpha, beta=beta, k=k).numpy()
    assert not np.allclose(default, expected, rtol=1e-6)  # PyTorch's alpha/n convention differs


def test_local_response_norm_errors():
    with pytest.raises(ValueError, match=r"local_response_norm: `input` must be at least 3-D \(N, C, \*\), got 2-D"):
        F.local_response_norm(cv.tensor(np.ones((2, 3))), 2)
    with pytest.raises(ValueError, match=r"local_response_norm: `size` must be a positive int, got 0"):
        F.local_response_norm(cv.tensor(np.ones((2, 3, 4))), 0)
