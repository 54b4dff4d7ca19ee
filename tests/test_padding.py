"""F.pad in every mode against PyTorch (forward and gradient), gradcheck, bad input, and conv after pad."""

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

DTYPES = [np.float64, np.float32]
MODES = ["constant", "reflect", "replicate", "circular"]
rng = np.random.default_rng(1)


@st.composite
def pad_cases(draw):
    """Mode, an input of rank n+1 or n+2 for n padded dims (1-3), and paddings each mode accepts."""
    mode = draw(st.sampled_from(MODES))
    n_dims = draw(st.integers(1, 3))
    batch = (draw(st.integers(1, 2)),) if draw(st.booleans()) else ()
    shape = (*batch, draw(st.integers(1, 3)), *(draw(st.integers(2, 4)) for _ in range(n_dims)))
    pads = []
    for size in shape[::-1][:n_dims]:  # last dimension first, as PyTorch's `pad`
        top = {"reflect": size - 1, "circular": size, "replicate": 3, "constant": 3}[mode]
        low = -1 if mode == "constant" else 0  # negative (cropping) pads only in constant mode
        pads += [draw(st.integers(low, top)), draw(st.integers(low, top))]
    value = draw(st.floats(-2, 2)) if mode == "constant" else None
    return shape, tuple(pads), mode, value, draw(st.sampled_from(DTYPES))


@settings(max_examples=40, deadline=None)
@given(pad_cases())
def test_pad_matches_torch(case):
    shape, pads, mode, value, dtype = case
    kwargs = {"value": value} if mode == "constant" else {}
    compare_with_torch(lambda x: F.pad(x, pads, mode, **kwargs), lambda x: TF.pad(x, pads, mode, **kwargs),
                       [rng.standard_normal(shape)], dtype)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(MODES), st.integers(1, 2), st.integers(1, 3), st.booleans(), st.sampled_from(DTYPES))
def test_conv_after_pad_matches_torch(mode, pad, kernel, bias, dtype):
    """Every padding mode of a conv layer: F.pad(x, mode) followed by an unpadded conv."""
    x, w = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, kernel, kernel))
    b = rng.standard_normal(2)
    pads = (pad, pad, pad, pad)

    def ours(a, c):
        return F.conv2d(F.pad(a, pads, mode), c, cv.tensor(b.astype(dtype)) if bias else None)

    def theirs(a, c):
        import torch

        return TF.conv2d(TF.pad(a, pads, mode), c, torch.tensor(b.astype(dtype)) if bias else None)

    compare_with_torch(ours, theirs, [x, w], dtype)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode):
    x = cv.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    assert gradcheck(lambda a: F.pad(a, (2, 1, 1, 2), mode), [x])


def test_reflect_gradient_folds_back_onto_the_mirrored_pixels():
    x = cv.tensor(np.array([[1.0, 2.0, 3.0, 4.0]]), requires_grad=True)
    y = F.pad(x, (2, 1), "reflect")  # [3 2 | 1 2 3 4 | 3]
    np.testing.assert_array_equal(y.numpy(), [[3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1.0, 2.0, 3.0, 1.0]])


def test_constant_padding_value_and_negative_crop():
    x = cv.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(F.pad(x, (1, -1), value=9.0).numpy(), [[9, 0, 1], [9, 3, 4]])
    assert F.pad(x, (-2, -1)).shape == (2, 0)  # cropping to an empty axis is allowed, as in PyTorch


def _x(*shape):
    return cv.tensor(np.ones(shape))


BAD = [
    (lambda: F.pad(_x(2, 3), (1, 1), "zeros"), ValueError,
     r"pad: `mode` must be one of 'constant', 'reflect', 'replicate', 'circular', got 'zeros'"),
    (lambda: F.pad(_x(2, 3), (1, 1, 1)), ValueError, r"`pad` must have an even length .* got 3 values"),
    (lambda: F.pad(_x(3), (1, 1, 1, 1)), ValueError, r"pads 2 dimensions but `input` has only 1"),
    (lambda: F.pad(_x(1, 3, 3), (3, 0), "reflect"), ValueError,
     r"reflect padding \(3, 0\) must be smaller than the input size 3"),
    (lambda: F.pad(_x(1, 3, 3), (4, 0), "circular"), ValueError, r"must not exceed the input size 3"),
    (lambda: F.pad(_x(1, 2, 3, 3), (1, 1), "replicate"), ValueError, r"pads 1 dimensions but `input` is 4-D"),
    (lambda: F.pad(_x(1, 3, 3), (-1, 1), "reflect"), ValueError, r"negative padding .* only supported with mode="),
    (lambda: F.pad(_x(1, 3, 3), (1, 1), "reflect", value=2.0), ValueError, r"`value` only applies to mode="),
    (lambda: F.pad(_x(1, 3), (-2, -2)), ValueError, r"would leave dimension 1 of size 3 with -1 elements"),
    (lambda: F.pad(_x(1, 3), 1), TypeError, r"`pad` must be a tuple of ints"),
    (lambda: F.pad(np.ones(3), (1, 1)), TypeError, r"pad: `input` must be a convolve Tensor"),
]


@pytest.mark.parametrize(("call", "exc", "match"), BAD)
def test_bad_input_is_rejected_with_a_clear_message(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
