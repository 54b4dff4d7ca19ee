"""The one geometry module: one integer rule everywhere, layers validate exactly as their functionals do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convolve as cv
import convolve.nn.functional as F
from convolve import inspect, nn
from convolve.nn.functional import geometry

X = cv.tensor(np.random.default_rng(0).standard_normal((1, 4, 7, 7)))
W = cv.tensor(np.random.default_rng(1).standard_normal((4, 2, 3, 3)))


@pytest.mark.parametrize("value", [2, np.int64(2), np.int32(2), np.uint8(2)])
def test_numpy_integers_are_accepted_everywhere(value):
    assert F.conv2d(X, W, stride=value, groups=value).shape == (1, 4, 3, 3)
    assert F.conv2d(X, W, padding=(value, 1), dilation=value, groups=2).shape == (1, 4, 7, 5)
    assert F.max_pool2d(X, value, stride=value, padding=np.int64(1)).shape == (1, 4, 4, 4)
    assert nn.Conv2d(4, 4, value, stride=value, groups=value).stride == (2, 2)
    assert nn.MaxPool2d(value, padding=np.int64(1))(X).shape == (1, 4, 4, 4)
    assert geometry.conv_output_size(7, value, stride=value) == 3


@pytest.mark.parametrize("call", [
    lambda: F.conv2d(X, W, stride=True, groups=2),
    lambda: F.conv2d(X, W, stride=(1, True), groups=2),
    lambda: F.conv2d(X, W, groups=True),
    lambda: F.conv2d(X, W, padding=(False, 0), groups=2),
    lambda: F.max_pool2d(X, (2, True)),
    lambda: nn.Conv2d(4, 4, 3, groups=True),
    lambda: nn.Conv2d(4, 4, (3, True)),
    lambda: nn.MaxPool2d(True),
    lambda: nn.AdaptiveAvgPool2d(True),
    lambda: geometry.conv_output_size(7, 3, stride=True),
])
def test_bools_are_refused_everywhere(call):
    with pytest.raises(ValueError, match="must be"):
        call()


def test_groups_message_is_the_same_for_layer_and_functional():
    with pytest.raises(ValueError, match=r"^conv2d: `groups` must be a positive int, got 0$"):
        F.conv2d(X, W, groups=0)
    with pytest.raises(ValueError, match=r"^Conv2d: `groups` must be a positive int, got 0$"):
        nn.Conv2d(4, 4, 3, groups=0)


def test_pooling_layer_refuses_at_construction_what_its_functional_refuses():
    """nn.MaxPool2d(3, stride=1, padding=2, dilation=2) used to build and then fail on its first forward."""
    with pytest.raises(ValueError, match="max_pool2d: `padding` must be at most half of `kernel_size`"):
        F.max_pool2d(X, 3, stride=1, padding=2, dilation=2)
    with pytest.raises(ValueError, match="MaxPool2d: `padding` must be at most half of `kernel_size`"):
        nn.MaxPool2d(3, stride=1, padding=2, dilation=2)
    with pytest.raises(RuntimeError, match="pad should be"):  # PyTorch's rule is the same
        torch.nn.functional.max_pool2d(torch.zeros(1, 1, 7, 7), 3, stride=1, padding=2, dilation=2)
    with pytest.raises(ValueError, match="avg_pool2d: `divisor_override` must be None or a non-zero int"):
        F.avg_pool2d(X, 2, divisor_override=0)
    with pytest.raises(ValueError, match="AvgPool2d: `divisor_override` must be None or a non-zero int"):
        nn.AvgPool2d(2, divisor_override=0)
    assert nn.AvgPool2d(2, divisor_override=-2)(X).shape == F.avg_pool2d(X, 2, divisor_override=-2).shape


@pytest.mark.parametrize("size, kernel, stride, padding, dilation, ceil_mode", [
    (7, 3, 2, 1, 1, False), (7, 3, 2, 1, 1, True), (10, 3, 3, 0, 2, True), (5, 2, 2, 1, 1, True), (9, 4, 1, 2, 2, False)
])
def test_one_output_size_formula(size, kernel, stride, padding, dilation, ceil_mode):
    """The functional, the layer and inspect agree with PyTorch's pooling output size."""
    x = torch.zeros(1, 1, size, size)
    want = torch.nn.functional.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode).shape[-1]
    assert geometry.sliding_output_size(size, kernel, stride, padding, dilation, ceil_mode) == want
    assert inspect.output_size(size, kernel, stride, padding, dilation, ceil_mode) == want
    ours = F.max_pool2d(cv.zeros(1, 1, size, size), kernel, stride, padding, dilation, ceil_mode).shape[-1]
    assert ours == want


def test_same_split_and_asymmetric_padding():
    assert geometry.same_padding((3, 4), (1, 2)) == ((1, 1), (3, 3))
    assert geometry.same_padding((2,), (1,)) == ((0, 1),)
    pads = ((1, 2), (0, 1))
    y = F.conv2d(X, W, padding=pads, groups=2)
    want = F.conv2d(F.pad(X, (0, 1, 1, 2)), W, groups=2)
    np.testing.assert_allclose(y.numpy(), want.numpy())
    layer = nn.Conv2d(4, 4, 3, padding=pads, groups=2, dtype=np.float64)
    assert layer.padding == ((1, 2), (0, 1)) and layer(X).shape == y.shape


def test_transposed_output_size_is_shared():
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1)
    y = layer(cv.zeros(1, 2, 5, 5))
    assert y.shape[-1] == geometry.transposed_output_size(5, 3, 2, 1, 1, 1) == 10
    assert inspect.infer_output_shape(layer, (1, 2, 5, 5)) == tuple(y.shape)
