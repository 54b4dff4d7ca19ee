"""Pooling: max/avg/adaptive 1-D and 2-D against PyTorch (forward, gradient, indices), gradcheck, lecture facts."""

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
SWEEP = settings(max_examples=30, deadline=None)


def distinct(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Values that are all different (a scaled random permutation) so the arg-max is unambiguous."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n).reshape(shape) - n / 2) / n


def window(draw, dilated: bool):
    """(kernel, stride, padding, dilation, size) along one axis, with at least one output window.

    A dilated kernel wider than the input could make a window of padding only (see the test below), hence size >= it.
    """
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    d = draw(st.integers(1, 2)) if dilated else 1
    size = (max(1, k - 2 * p) if d == 1 else d * (k - 1) + 1) + draw(st.integers(0, 5))
    return k, s, p, d, size


def assert_indices_match(ours, theirs, x: np.ndarray, kwargs: dict) -> None:
    """Compare return_indices output with PyTorch's (int64 flat indices into each input plane)."""
    _, idx = ours(cv.tensor(x), return_indices=True, **kwargs)
    _, ref = theirs(torch.tensor(x), return_indices=True, **kwargs)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx.numpy(), ref.numpy())


# ----- max pooling ----------------------------------------------------------------------------------------------
@st.composite
def max2d_cases(draw):
    (kh, sh, ph, dh, h), (kw, sw, pw, dw, w) = window(draw, True), window(draw, True)
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    kwargs = dict(kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                  ceil_mode=draw(st.booleans()))
    return shape, kwargs, draw(st.sampled_from(DTYPES))


@SWEEP
@given(max2d_cases())
def test_max_pool2d_matches_torch(case):
    shape, kwargs, dtype = case
    x = distinct(shape)
    compare_with_torch(lambda a: F.max_pool2d(a, **kwargs), lambda a: TF.max_pool2d(a, **kwargs), [x], dtype)
    assert_indices_match(F.max_pool2d, TF.max_pool2d, x, kwargs)


@SWEEP
@given(st.data())
def test_max_pool1d_matches_torch(data):
    k, s, p, d, size = window(data.draw, True)
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), size)
    kwargs = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=data.draw(st.booleans()))
    x, dtype = distinct(shape), data.draw(st.sampled_from(DTYPES))
    compare_with_torch(lambda a: F.max_pool1d(a, **kwargs), lambda a: TF.max_pool1d(a, **kwargs), [x], dtype)
    assert_indices_match(F.max_pool1d, TF.max_pool1d, x, kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [dict(kernel_size=3, stride=2), dict(kernel_size=2),
                                    dict(kernel_size=3, stride=1, padding=1)])
def test_max_pool_ties_go_to_first_maximum_as_torch(dtype, kwargs):
    x = np.round(np.random.default_rng(1).standard_normal((2, 2, 7, 7)))  # many equal values
    x[0, 0] = 1.0  # a constant plane: every window is one big tie
    compare_with_torch(lambda a: F.max_pool2d(a, **kwargs), lambda a: TF.max_pool2d(a, **kwargs), [x], dtype)
    assert_indices_match(F.max_pool2d, TF.max_pool2d, x.astype(dtype), kwargs)


@pytest.mark.parametrize("special", ["nan", "-inf"])
def test_max_pool_nan_and_minus_inf_windows_as_torch(special):
    """NaN wins its window (PyTorch: the last NaN); a window of -inf points at its first tap inside the input."""
    x = distinct((1, 1, 5, 5))
    if special == "nan":
        x[0, 0, 2, 3] = x[0, 0, 3, 3] = np.nan
    x[0, 0, :2, :2] = -np.inf  # the top-left window is -inf inside the input and padding outside
    kwargs = dict(kernel_size=3, stride=2, padding=1)
    compare_with_torch(lambda a: F.max_pool2d(a, **kwargs), lambda a: TF.max_pool2d(a, **kwargs), [x])
    assert_indices_match(F.max_pool2d, TF.max_pool2d, x, kwargs)


@pytest.mark.parametrize("dims", [1, 2])
def test_return_indices_path_gives_the_same_gradient_and_unbatched_indices(dims):
    """With return_indices the arg-max is found in forward and reused by backward; unbatched indices too."""
    ours, theirs = (F.max_pool1d, TF.max_pool1d) if dims == 1 else (F.max_pool2d, TF.max_pool2d)
    x = np.round(np.random.default_rng(6).standard_normal((2, 3) + (7,) * dims))  # ties included
    kwargs = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    compare_with_torch(lambda a: ours(a, return_indices=True, **kwargs)[0],
                       lambda a: theirs(a, return_indices=True, **kwargs)[0], [x])
    assert_indices_match(ours, theirs, x[0], kwargs)


def test_window_of_padding_only_gives_minus_inf_and_no_gradient():
    """Taps -1 and 1 of a 1-wide input are both padding; PyTorch's gradient there lands in the next channel."""
    x = cv.tensor(np.ones((1, 2, 1, 1)), requires_grad=True)
    y = F.max_pool2d(x, (1, 2), 1, (0, 1), (1, 2))
    y.backward(np.ones(y.shape))
    assert y.shape == (1, 2, 1, 1) and np.all(y.numpy() == -np.inf)
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((1, 2, 1, 1)))


def test_overlapping_windows_accumulate_gradient():
    """AlexNet's 3x3/2 pooling: a maximum shared by four windows receives all four gradients."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0  # the centre lies in all four 3x3/2 windows
    t = cv.tensor(x, requires_grad=True)
    F.max_pool2d(t, 3, 2).sum().backward()
    expected = np.zeros_like(x)
    expected[0, 0, 2, 2] = 4.0
    np.testing.assert_array_equal(t.grad.numpy(), expected)
    compare_with_torch(lambda a: F.max_pool2d(a, 3, 2), lambda a: TF.max_pool2d(a, 3, 2), [distinct((2, 3, 9, 9))])


# ----- average pooling ------------------------------------------------------------------------------------------
@st.composite
def avg2d_cases(draw):
    (kh, sh, ph, _, h), (kw, sw, pw, _, w) = window(draw, False), window(draw, False)
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    kwargs = dict(kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw), ceil_mode=draw(st.booleans()),
                  count_include_pad=draw(st.booleans()), divisor_override=draw(st.sampled_from([None, 1, 3, 7])))
    return shape, kwargs, draw(st.sampled_from(DTYPES))


@SWEEP
@given(avg2d_cases())
def test_avg_pool2d_matches_torch(case):
    shape, kwargs, dtype = case
    x = np.random.default_rng(2).standard_normal(shape)
    compare_with_torch(lambda a: F.avg_pool2d(a, **kwargs), lambda a: TF.avg_pool2d(a, **kwargs), [x], dtype)


@SWEEP
@given(st.data())
def test_avg_pool1d_matches_torch(data):
    k, s, p, _, size = window(data.draw, False)
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), size)
    kwargs = dict(kernel_size=k, stride=s, padding=p, ceil_mode=data.draw(st.booleans()),
                  count_include_pad=data.draw(st.booleans()))
    x, dtype = np.random.default_rng(3).standard_normal(shape), data.draw(st.sampled_from(DTYPES))
    compare_with_torch(lambda a: F.avg_pool1d(a, **kwargs), lambda a: TF.avg_pool1d(a, **kwargs), [x], dtype)


def test_avg_pool_ceil_mode_border_divisors_by_hand():
    """5x5 ones, 2x2/2, padding 1, ceil_mode: corner windows hold one input pixel and one padded row/column."""
    x = cv.tensor(np.ones((1, 1, 4, 4)))
    with_pad = F.avg_pool2d(x, 2, 2, padding=1, ceil_mode=True).numpy()[0, 0]
    without = F.avg_pool2d(x, 2, 2, padding=1, ceil_mode=True, count_include_pad=False).numpy()[0, 0]
    np.testing.assert_allclose(with_pad[0], [0.25, 0.5, 0.25])  # corners: 1 of 4 taps is input
    np.testing.assert_allclose(without, np.ones((3, 3)))
    overhang = F.avg_pool2d(cv.tensor(np.ones((1, 1, 5, 5))), 2, 2, ceil_mode=True).numpy()[0, 0]
    np.testing.assert_allclose(overhang, np.ones((3, 3)))  # the overhang past the input is never counted


# ----- adaptive pooling -----------------------------------------------------------------------------------------
@st.composite
def adaptive_cases(draw, dims: int):
    sizes = tuple(draw(st.integers(1, 9)) for _ in range(dims))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), *sizes)
    out = tuple(draw(st.one_of(st.integers(1, 11), st.none()) if dims == 2 else st.integers(1, 11))
                for _ in range(dims))
    return shape, out if dims == 2 else out[0], draw(st.sampled_from(DTYPES))


@SWEEP
@given(adaptive_cases(2))
def test_adaptive_avg_pool2d_matches_torch(case):
    shape, out, dtype = case
    x = np.random.default_rng(4).standard_normal(shape)
    compare_with_torch(lambda a: F.adaptive_avg_pool2d(a, out), lambda a: TF.adaptive_avg_pool2d(a, out), [x], dtype)


@SWEEP
@given(adaptive_cases(2))
def test_adaptive_max_pool2d_matches_torch(case):
    shape, out, dtype = case
    x = distinct(shape)
    compare_with_torch(lambda a: F.adaptive_max_pool2d(a, out), lambda a: TF.adaptive_max_pool2d(a, out), [x], dtype)
    assert_indices_match(F.adaptive_max_pool2d, TF.adaptive_max_pool2d, x, dict(output_size=out))


@SWEEP
@given(adaptive_cases(1))
def test_adaptive_pool1d_matches_torch(case):
    shape, out, dtype = case
    x = distinct(shape)
    compare_with_torch(lambda a: F.adaptive_avg_pool1d(a, out), lambda a: TF.adaptive_avg_pool1d(a, out), [x], dtype)
    compare_with_torch(lambda a: F.adaptive_max_pool1d(a, out), lambda a: TF.adaptive_max_pool1d(a, out), [x], dtype)
    assert_indices_match(F.adaptive_max_pool1d, TF.adaptive_max_pool1d, x, dict(output_size=out))


@pytest.mark.parametrize("out", [1, (3, 4), (5, 5)])
def test_adaptive_max_ties_and_global_pooling(out):
    x = np.round(np.random.default_rng(5).standard_normal((2, 3, 7, 6)))  # many equal values
    compare_with_torch(lambda a: F.adaptive_max_pool2d(a, out), lambda a: TF.adaptive_max_pool2d(a, out), [x])
    assert_indices_match(F.adaptive_max_pool2d, TF.adaptive_max_pool2d, x, dict(output_size=out))
    gap = F.adaptive_avg_pool2d(cv.tensor(x), 1)  # global average pooling
    np.testing.assert_allclose(gap.numpy(), x.mean(axis=(2, 3), keepdims=True))


# ----- shared behaviour -----------------------------------------------------------------------------------------
UNBATCHED = [
    (lambda a: F.max_pool2d(a, 3, 2, 1), lambda a: TF.max_pool2d(a, 3, 2, 1), (3, 7, 8)),
    (lambda a: F.max_pool1d(a, 2), lambda a: TF.max_pool1d(a, 2), (3, 7)),
    (lambda a: F.avg_pool2d(a, 2, ceil_mode=True), lambda a: TF.avg_pool2d(a, 2, ceil_mode=True), (3, 5, 5)),
    (lambda a: F.avg_pool1d(a, 3, 2), lambda a: TF.avg_pool1d(a, 3, 2), (2, 9)),
    (lambda a: F.adaptive_avg_pool2d(a, (2, 3)), lambda a: TF.adaptive_avg_pool2d(a, (2, 3)), (3, 5, 7)),
    (lambda a: F.adaptive_max_pool2d(a, 2), lambda a: TF.adaptive_max_pool2d(a, 2), (3, 5, 7)),
    (lambda a: F.adaptive_avg_pool1d(a, 4), lambda a: TF.adaptive_avg_pool1d(a, 4), (3, 7)),
]


@pytest.mark.parametrize("ours, theirs, shape", UNBATCHED)
def test_unbatched_inputs(ours, theirs, shape):
    compare_with_torch(ours, theirs, [distinct(shape)], np.float32)


GRADCHECK = [
    (lambda a: F.max_pool2d(a, (3, 2), (2, 1), (1, 1), dilation=(1, 2), ceil_mode=True), (1, 2, 5, 6)),
    (lambda a: F.max_pool1d(a, 3, 2, 1, ceil_mode=True), (2, 2, 6)),
    (lambda a: F.avg_pool2d(a, 3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 6, 5)),
    (lambda a: F.avg_pool2d(a, 2, 1, 1, divisor_override=3), (1, 1, 4, 4)),
    (lambda a: F.avg_pool1d(a, 3, 2, 1, ceil_mode=True), (2, 2, 6)),
    (lambda a: F.adaptive_avg_pool2d(a, (3, 4)), (1, 2, 5, 7)),
    (lambda a: F.adaptive_avg_pool1d(a, 4), (2, 2, 7)),
    (lambda a: F.adaptive_max_pool2d(a, (3, 4)), (1, 2, 5, 7)),
    (lambda a: F.adaptive_max_pool1d(a, 3), (2, 2, 7)),
]


@pytest.mark.parametrize("fn, shape", GRADCHECK)
def test_gradcheck(fn, shape):
    assert gradcheck(fn, [cv.tensor(distinct(shape), requires_grad=True)])


def test_no_grad_fast_path_gives_the_same_values():
    x = distinct((2, 3, 9, 9)).astype(np.float32)
    t = cv.tensor(x, requires_grad=True)
    with_graph = F.max_pool2d(t, 3, 2, 1, ceil_mode=True)
    with cv.no_grad():
        without = F.max_pool2d(t, 3, 2, 1, ceil_mode=True)
    assert without.dtype == np.float32 and not without.requires_grad
    np.testing.assert_array_equal(with_graph.numpy(), without.numpy())


# ----- lecture facts --------------------------------------------------------------------------------------------
def test_vgg_pooling_halves_224_and_keeps_a_quarter():
    x = cv.tensor(np.zeros((1, 64, 224, 224), np.float32))
    y = F.max_pool2d(x, 2, 2)
    assert y.shape == (1, 64, 112, 112)
    assert y.numel() / x.numel() == 0.25  # 2x2/2 discards 75% of the activations


@pytest.mark.parametrize("w, f, s", [(224, 2, 2), (55, 3, 2), (32, 3, 1), (13, 3, 2), (7, 7, 1)])
def test_output_size_formula(w, f, s):
    y = F.max_pool2d(cv.tensor(np.zeros((1, 1, w, w))), f, s)
    assert y.shape[-1] == (w - f) // s + 1


def test_max_gradient_goes_to_argmax_and_average_spreads_evenly():
    x = np.array([[[[1.0, 2.0, 0.0, 0.0], [4.0, 3.0, 0.0, 5.0], [0.0, 0.0, 6.0, 7.0], [8.0, 0.0, 0.0, 0.0]]]])
    t = cv.tensor(x, requires_grad=True)
    F.max_pool2d(t, 2).sum().backward()
    switches = np.array([[0, 0, 0, 0], [1, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=float)
    np.testing.assert_array_equal(t.grad.numpy()[0, 0], switches)
    t = cv.tensor(x, requires_grad=True)
    F.avg_pool2d(t, 2).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy()[0, 0], np.full((4, 4), 0.25))


def test_pooling_has_no_parameters():
    x = cv.tensor(distinct((1, 2, 4, 4)), requires_grad=True)
    for y in (F.max_pool2d(x, 2), F.avg_pool2d(x, 2), F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)):
        assert [i for i in y.grad_fn.inputs if isinstance(i, cv.Tensor)] == [x]  # the input is the only tensor


# ----- bad input ------------------------------------------------------------------------------------------------
X4 = cv.tensor(np.zeros((1, 2, 4, 4)))
BAD = [
    (lambda: F.max_pool2d(cv.tensor(np.zeros((4, 4))), 2), ValueError, r"max_pool2d: `input` must be 3-D or 4-D"),
    (lambda: F.max_pool1d(X4, 2), ValueError, r"max_pool1d: `input` must be 2-D or 3-D \(N, C, L\)"),
    (lambda: F.max_pool2d(X4, 0), ValueError, r"max_pool2d: `kernel_size` must be positive, got \(0, 0\)"),
    (lambda: F.max_pool2d(X4, 2, stride=(1, 0)), ValueError, r"`stride` must be positive, got \(1, 0\)"),
    (lambda: F.max_pool2d(X4, 2, dilation=0), ValueError, r"`dilation` must be positive, got \(0, 0\)"),
    (lambda: F.avg_pool2d(X4, 2, padding=-1), ValueError, r"`padding` must be non-negative, got \(-1, -1\)"),
    (lambda: F.max_pool2d(X4, 3, padding=2), ValueError, r"`padding` must be at most half of `kernel_size`"),
    (lambda: F.avg_pool1d(cv.tensor(np.zeros((1, 2, 4))), 2, padding=2), ValueError, r"avg_pool1d: `padding`.*got"),
    (lambda: F.max_pool2d(X4, 5), ValueError,
     r"Given input size: \(2x4x4\). Calculated output size: \(2x0x0\). Output size is too small"),
    (lambda: F.max_pool2d(X4, 2, dilation=4), ValueError, r"Output size is too small"),
    (lambda: F.max_pool2d(cv.tensor(np.zeros((1, 2, 4, 4), np.int64)), 2), TypeError,
     r"max_pool2d: `input` must be a floating-point tensor, got dtype int64"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((1, 2, 4, 4)), 2), TypeError, r"must be a convolve Tensor"),
    (lambda: F.avg_pool2d(cv.tensor(np.zeros((0, 2, 4, 4))), 2), ValueError, r"`input` must not be empty"),
    (lambda: F.max_pool2d(X4, (2, 2, 2)), ValueError, r"`kernel_size` must be an int or a tuple of 2 ints"),
    (lambda: F.avg_pool2d(X4, 2, divisor_override=0), ValueError, r"`divisor_override` must be None or a non-zero"),
    (lambda: F.adaptive_avg_pool2d(X4, 0), ValueError, r"adaptive_avg_pool2d: `output_size` must be a positive int"),
    (lambda: F.adaptive_max_pool2d(X4, (2, 2, 2)), ValueError, r"tuple of 2 positive ints .*got \(2, 2, 2\)"),
    (lambda: F.adaptive_avg_pool1d(cv.tensor(np.zeros((1, 2, 4))), None), ValueError, r"got None"),
    (lambda: F.adaptive_max_pool1d(cv.tensor(np.zeros((1, 2, 4))), True), ValueError, r"got True"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_input_messages(call, error, message):
    with pytest.raises(error, match=message):
        call()
