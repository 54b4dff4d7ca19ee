"""conv1d / conv2d / conv_transpose1d / conv_transpose2d against PyTorch, finite differences, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.nn.functional as F
from convolve.engines import workspace
from convolve.testing import gradcheck
from tests.oracle import compare_with_torch

DTYPES = [np.float64, np.float32]
rng = np.random.default_rng(0)
SWEEP = settings(max_examples=40, deadline=None)
pytestmark = pytest.mark.usefixtures("engine")  # the whole oracle suite runs under every engine


def _run(ours, theirs, x, w, b, dtype, **kwargs):
    """Compare ours(x, w, b, **kwargs) with torch's, with or without a bias, forward and every gradient."""
    if b is None:
        compare_with_torch(lambda a, c: ours(a, c, **kwargs), lambda a, c: theirs(a, c, **kwargs), [x, w], dtype)
    else:
        compare_with_torch(lambda a, c, d: ours(a, c, d, **kwargs), lambda a, c, d: theirs(a, c, d, **kwargs),
                           [x, w, b], dtype)


@st.composite
def conv_cases(draw, nd):
    """A valid convolution configuration: shapes, groups (incl. depthwise), stride, padding, dilation, bias."""
    n = draw(st.integers(1, 3))
    if draw(st.booleans()):  # depthwise: one filter group per input channel
        groups = draw(st.integers(1, 4))
        c_g, k_g = 1, draw(st.integers(1, 2))
    else:
        groups, c_g, k_g = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))  # odd and even kernels
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    stride = (1,) * nd if padding == "same" else tuple(draw(st.integers(1, 3)) for _ in range(nd))
    if padding == "int":
        padding = draw(st.integers(0, 2))
    elif padding == "tuple":
        padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 4)) for k, d in zip(kernel, dilation))
    x = rng.standard_normal((n, groups * c_g, *spatial))
    w = rng.standard_normal((groups * k_g, c_g, *kernel))
    b = rng.standard_normal(groups * k_g) if draw(st.booleans()) else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, w, b, kwargs, draw(st.sampled_from(DTYPES))


@SWEEP
@given(conv_cases(2))
def test_conv2d_matches_torch(case):
    x, w, b, kwargs, dtype = case
    _run(F.conv2d, TF.conv2d, x, w, b, dtype, **kwargs)


@SWEEP
@given(conv_cases(1))
def test_conv1d_matches_torch(case):
    x, w, b, kwargs, dtype = case
    _run(F.conv1d, TF.conv1d, x, w, b, dtype, **kwargs)


@st.composite
def transposed_cases(draw, nd):
    """A valid transposed convolution, including output_padding < max(stride, dilation)."""
    n, groups = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    c_g, k_g = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    out_pad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    spatial = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    assume(all((h - 1) * s - 2 * p + d * (k - 1) + op + 1 >= 1
               for h, s, p, d, k, op in zip(spatial, stride, padding, dilation, kernel, out_pad)))
    x = rng.standard_normal((n, groups * c_g, *spatial))
    w = rng.standard_normal((groups * c_g, k_g, *kernel))
    b = rng.standard_normal(groups * k_g) if draw(st.booleans()) else None
    kwargs = dict(stride=stride, padding=padding, output_padding=out_pad, groups=groups, dilation=dilation)
    return x, w, b, kwargs, draw(st.sampled_from(DTYPES))


@SWEEP
@given(transposed_cases(2))
def test_conv_transpose2d_matches_torch(case):
    x, w, b, kwargs, dtype = case
    _run(F.conv_transpose2d, TF.conv_transpose2d, x, w, b, dtype, **kwargs)


@SWEEP
@given(transposed_cases(1))
def test_conv_transpose1d_matches_torch(case):
    x, w, b, kwargs, dtype = case
    _run(F.conv_transpose1d, TF.conv_transpose1d, x, w, b, dtype, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unbatched_input_matches_torch(dtype):
    x, w, b = rng.standard_normal((3, 6, 5)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    _run(F.conv2d, TF.conv2d, x, w, b, dtype, stride=(2, 1), padding=1)
    _run(F.conv1d, TF.conv1d, x[:, 0], w[:, :, 0], b, dtype, padding="same")
    _run(F.conv_transpose2d, TF.conv_transpose2d, x, rng.standard_normal((3, 2, 2, 3)), None, dtype, stride=2)


def test_batch_chunking_gives_the_same_result(monkeypatch):
    """A tiny im2col budget forces one chunk per sample; results and gradients must not change."""
    x, w = rng.standard_normal((5, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    wt = rng.standard_normal((2, 3, 3, 3))
    monkeypatch.setattr(workspace, "COLS_BUDGET_BYTES", 1)
    _run(F.conv2d, TF.conv2d, x, w, None, np.float64, stride=2, padding=1)
    _run(F.conv_transpose2d, TF.conv_transpose2d, x, wt, None, np.float64, stride=2, padding=1)


def test_only_the_needed_gradients_are_computed():
    x = cv.tensor(rng.standard_normal((1, 2, 5, 5)))
    w = cv.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    F.conv2d(x, w).sum().backward()
    assert x.grad is None and w.grad is not None


def _t(shape, grad=True):
    return cv.tensor(rng.standard_normal(shape), requires_grad=grad)


@pytest.mark.parametrize(
    ("fn", "shapes", "kwargs"),
    [
        (F.conv2d, [(2, 4, 5, 4), (4, 2, 3, 2), (4,)], dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)),
        (F.conv2d, [(1, 2, 4, 4), (2, 2, 2, 2), (2,)], dict(padding="same")),
        (F.conv1d, [(2, 3, 7), (3, 1, 3), (3,)], dict(stride=2, padding=1, dilation=2, groups=3)),
        (F.conv_transpose2d, [(2, 2, 3, 3), (2, 2, 3, 2), (4,)], dict(stride=2, padding=1, output_padding=1,
                                                                      groups=2)),
        (F.conv_transpose1d, [(1, 2, 4), (2, 3, 3), (3,)], dict(stride=3, dilation=2, output_padding=1)),
    ],
)
def test_gradcheck(fn, shapes, kwargs):
    x, w, b = (_t(s) for s in shapes)
    assert gradcheck(lambda a, c, d: fn(a, c, d, **kwargs), [x, w, b])


def test_conv_output_size():
    assert F.conv_output_size(7, 3) == 5
    assert F.conv_output_size(32, 5, stride=1, padding=2) == 32
    assert F.conv_output_size(10, 3, stride=2, dilation=2) == 3
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv_output_size(3, 5)
    with pytest.raises(ValueError, match="`stride` must be positive"):
        F.conv_output_size(7, 3, stride=0)
    assert F.conv_output_size(7, 4, padding="same", dilation=2) == 7
    assert F.conv_output_size(7, 4, padding="valid") == 4
    with pytest.raises(ValueError, match="conv_output_size: padding='same' is not supported for strided"):
        F.conv_output_size(7, 3, stride=2, padding="same")


X4, W4 = (2, 4, 6, 6), (6, 4, 3, 3)


def _conv(x=X4, w=W4, **kwargs):
    x = cv.tensor(np.ones(x)) if isinstance(x, tuple) else x
    w = cv.tensor(np.ones(w)) if isinstance(w, tuple) else w
    return lambda: F.conv2d(x, w, **kwargs)


BAD_INPUT = [
    (_conv(x=(4, 6)), ValueError, r"conv2d: `input` must be 3-D or 4-D"),
    (_conv(x=(1, 2, 4, 6, 6)), ValueError, r"got 5-D with shape \(1, 2, 4, 6, 6\)"),
    (_conv(w=(6, 4, 3)), ValueError, r"conv2d: `weight` must be 4-D"),
    (_conv(w=(6, 3, 3, 3)), ValueError, r"`input` has 4 channels but `weight` expects 3 \(in_channels/groups = 3 x"),
    (_conv(w=(6, 2, 3, 3), groups=2, x=(2, 5, 6, 6)), ValueError, r"5 channels, which is not divisible by `groups`"),
    (_conv(w=(5, 2, 3, 3), groups=2), ValueError, r"`weight` has 5 output channels, not divisible by `groups` \(=2\)"),
    (_conv(groups=0), ValueError, r"`groups` must be a positive int, got 0"),
    (_conv(w=(6, 4, 7, 3)), ValueError, r"kernel size \(7, 3\) is larger than the padded input size \(6, 6\)"),
    (_conv(w=(6, 4, 3, 3), dilation=3), ValueError, r"kernel size \(7, 7\) is larger than the padded input"),
    (_conv(stride=0), ValueError, r"conv2d: `stride` must be positive, got \(0, 0\)"),
    (_conv(dilation=(1, -1)), ValueError, r"conv2d: `dilation` must be positive, got \(1, -1\)"),
    (_conv(padding=-1), ValueError, r"conv2d: `padding` must be non-negative, got \(-1, -1\)"),
    (_conv(padding=(1, 2, 3)), ValueError, r"`padding` must be an int or a tuple of 2 ints"),
    (_conv(padding="same", stride=2), ValueError, r"padding='same' is not supported for strided convolutions"),
    (_conv(padding="full"), ValueError, r"`padding` must be 'same', 'valid', an int or a tuple of 2 ints, got 'full'"),
    (_conv(x=cv.tensor(np.ones(X4, dtype=np.int64))), TypeError, r"conv2d: `input` must be a floating-point tensor"),
    (_conv(bias=cv.tensor(np.ones(5))), ValueError, r"`bias` must have shape \(6,\) \(out_channels\), got \(5,\)"),
    (_conv(bias=cv.tensor(np.ones(6, np.float32))), TypeError, r"`bias` has dtype float32 but `input` has"),
    (_conv(x=(0, 4, 6, 6)), ValueError, r"conv2d: `input` must not be empty, got shape \(0, 4, 6, 6\)"),
    (_conv(w=cv.tensor(np.ones(W4, np.float32))), TypeError, r"has dtype float64 but `weight` has dtype float32"),
    (_conv(x=np.ones(X4)), TypeError, r"conv2d: `input` must be a convolve Tensor, got ndarray"),
    (lambda: F.conv1d(cv.tensor(np.ones((1, 2, 5))), cv.tensor(np.ones((3, 2, 3, 3)))), ValueError,
     r"conv1d: `weight` must be 3-D"),
    (lambda: F.conv_transpose2d(cv.tensor(np.ones((1, 2, 3, 3))), cv.tensor(np.ones((3, 2, 3, 3)))), ValueError,
     r"conv_transpose2d: `input` has 2 channels but `weight` expects 3 \(weight.shape\[0\]\)"),
    (lambda: F.conv_transpose2d(cv.tensor(np.ones((1, 2, 3, 3))), cv.tensor(np.ones((2, 2, 3, 3))), stride=2,
                                output_padding=2), ValueError, r"`output_padding` \(2, 2\) must be smaller than"),
    (lambda: F.conv_transpose2d(cv.tensor(np.ones((1, 2, 1, 1))), cv.tensor(np.ones((2, 2, 1, 1))), padding=1),
     ValueError, r"output size \(-1, -1\) would be non-positive"),
    (lambda: F.conv_transpose1d(cv.tensor(np.ones((1, 2, 3))), cv.tensor(np.ones((2, 2, 3))), padding="same"),
     ValueError, r"no 'same'/'valid' for transposed"),
]


@pytest.mark.parametrize(("call", "exc", "match"), BAD_INPUT)
def test_bad_input_is_rejected_with_a_clear_message(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_padding_valid_and_same_shapes():
    x = cv.tensor(np.ones((1, 1, 6, 5)))
    assert F.conv2d(x, cv.tensor(np.ones((1, 1, 3, 2))), padding="valid").shape == (1, 1, 4, 4)
    assert F.conv2d(x, cv.tensor(np.ones((1, 1, 4, 2))), padding="same", dilation=(1, 3)).shape == (1, 1, 6, 5)


def test_same_padding_puts_the_extra_pixel_at_the_end():
    """PyTorch's 'same' for an even kernel pads 0 before and 1 after: y[i] = x[i] + x[i+1], last one x[-1]."""
    x = cv.tensor(np.array([[[1.0, 2.0, 3.0, 4.0]]]))
    y = F.conv1d(x, cv.tensor(np.ones((1, 1, 2))), padding="same")
    np.testing.assert_array_equal(y.numpy()[0, 0], [3.0, 5.0, 7.0, 4.0])


def test_float32_stays_float32():
    x = cv.tensor(np.ones((1, 2, 5, 5), np.float32), requires_grad=True)
    w = cv.tensor(np.ones((3, 2, 3, 3), np.float32), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == w.grad.dtype == np.float32
    z = F.conv_transpose2d(x, cv.tensor(np.ones((2, 3, 3, 3), np.float32)), stride=2)
    assert z.dtype == np.float32

