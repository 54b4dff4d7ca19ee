"""The lecture's convolution facts, recomputed by our code (hand-computed values, output-size arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convolve as cv
import convolve.nn.functional as F
from convolve.nn.functional.conv import im2col

rng = np.random.default_rng(2)


def _img(a):
    """A (1, 1, H, W) float64 tensor from a 2-D list."""
    return cv.tensor(np.asarray(a, dtype=np.float64)[None, None])


def test_mean_filter_on_a_small_image():
    image = _img([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]])
    box = cv.tensor(np.full((1, 1, 3, 3), 1 / 9))
    # valid: the mean of each 3x3 window; on this linear ramp it is the window's centre value
    np.testing.assert_allclose(F.conv2d(image, box).numpy()[0, 0], [[6, 7], [10, 11]], rtol=1e-12)
    # zero padding 1: the top-left window sees only 1, 2, 5, 6 -> 14/9
    padded = F.conv2d(image, box, padding=1).numpy()[0, 0]
    assert padded.shape == (4, 4)
    assert padded[0, 0] == pytest.approx(14 / 9)
    assert padded[0, 1] == pytest.approx((1 + 2 + 3 + 5 + 6 + 7) / 9)
    assert padded[1, 1] == pytest.approx(6.0)


def test_sobel_x_responds_to_a_vertical_edge():
    image = _img([[0, 0, 10, 10, 10]] * 5)  # dark left, bright right: a vertical edge between columns 1 and 2
    sobel_x = cv.tensor(np.array([[[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]]], dtype=np.float64))
    # each window: (1 + 2 + 1) * (x[col + 2] - x[col]) = 4 * 10 where the window straddles the edge, else 0
    out = F.conv2d(image, sobel_x).numpy()[0, 0]
    np.testing.assert_array_equal(out, [[40, 40, 0]] * 3)
    # cross-correlation, not convolution: the flipped kernel (a true convolution) gives the opposite sign
    flipped = cv.tensor(sobel_x.numpy()[:, :, ::-1, ::-1].copy())
    np.testing.assert_array_equal(F.conv2d(image, flipped).numpy()[0, 0], [[-40, -40, 0]] * 3)


def test_alexnet_conv1_geometry():
    assert F.conv_output_size(227, 11, stride=4, padding=0) == 55
    x = rng.standard_normal((1, 3, 227, 227)).astype(np.float32)
    w = (rng.standard_normal((96, 3, 11, 11)) * 0.01).astype(np.float32)
    b = np.zeros(96, np.float32)
    y = F.conv2d(cv.tensor(x), cv.tensor(w), cv.tensor(b), stride=4)
    assert y.shape == (1, 96, 55, 55)
    assert y.numel() == 290_400  # neurons
    assert w[0].size == 363 and w.size + b.size == 34_944  # weights per filter; parameters with sharing
    assert y.numel() * (w[0].size + 1) == 105_705_600  # parameters without weight sharing
    cols = im2col(x, (11, 11), (4, 4), (1, 1), (55, 55)).reshape(55 * 55, -1)
    assert cols.T.shape == (363, 3025)  # the lecture's input columns; weight rows (96, 363); product (96, 3025)
    assert (w.reshape(96, -1) @ cols.T).shape == (96, 3025)
    expected = TF.conv2d(torch.tensor(x), torch.tensor(w), stride=4).numpy()
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("stride", "size"), [(1, 5), (2, 3)])
def test_7x7_input_3x3_filter(stride, size):
    assert F.conv_output_size(7, 3, stride=stride) == size
    y = F.conv2d(cv.tensor(np.ones((1, 1, 7, 7))), cv.tensor(np.ones((1, 1, 3, 3))), stride=stride)
    assert y.shape == (1, 1, size, size)


def test_w10_f3_s2_p0_is_not_a_valid_setting():
    with pytest.raises(ValueError, match=r"= 4.5 is not an integer"):
        F.conv_output_size(10, 3, stride=2, padding=0, exact=True)
    assert F.conv_output_size(10, 3, stride=2) == 4  # PyTorch floors: the last input column is never read


def test_11x11_f5_s2_gives_4x4():
    assert F.conv_output_size(11, 5, stride=2, exact=True) == 4
    y = F.conv2d(cv.tensor(np.ones((1, 4, 11, 11))), cv.tensor(np.ones((1, 4, 5, 5))), stride=2)
    assert y.shape == (1, 1, 4, 4)


def test_5x5x3_two_filters_3x3_stride2_pad1():
    x, w, b = rng.standard_normal((1, 3, 5, 5)), rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(2)
    y = F.conv2d(cv.tensor(x), cv.tensor(w), cv.tensor(b), stride=2, padding=1).numpy()
    assert y.shape == (1, 2, 3, 3)  # 3x3x2
    # top-left output: the window covers padded rows/cols -1..1, so only w[:, :, 1:, 1:] meets real pixels
    assert y[0, 1, 0, 0] == pytest.approx(b[1] + np.sum(w[1, :, 1:, 1:] * x[0, :, :2, :2]))
    # centre output: window rows/cols 1..3 (stride 2 from -1), fully inside
    assert y[0, 0, 1, 1] == pytest.approx(b[0] + np.sum(w[0] * x[0, :, 1:4, 1:4]))


def test_dilation_2_on_a_1d_3_tap_filter():
    x = cv.tensor(np.array([[[1.0, 10.0, 100.0, 1000.0, 10000.0]]]))
    w = cv.tensor(np.array([[[2.0, 3.0, 5.0]]]))
    y = F.conv1d(x, w, dilation=2)
    np.testing.assert_array_equal(y.numpy(), [[[2 * 1 + 3 * 100 + 5 * 10000]]])  # w0*x0 + w1*x2 + w2*x4
    assert F.conv_output_size(5, 3, dilation=2) == 1  # a 3x3 filter with dilation 2 spans 5x5


def test_1x1_conv_is_a_per_pixel_linear_layer_across_channels():
    x, w, b = rng.standard_normal((2, 4, 3, 5)), rng.standard_normal((6, 4, 1, 1)), rng.standard_normal(6)
    y = F.conv2d(cv.tensor(x), cv.tensor(w), cv.tensor(b)).numpy()
    per_pixel = x.transpose(0, 2, 3, 1) @ w[:, :, 0, 0].T + b  # (N, H, W, C_in) @ (C_in, C_out)
    np.testing.assert_allclose(y, per_pixel.transpose(0, 3, 1, 2), rtol=1e-12)


def test_backward_is_a_convolution_with_flipped_filters():
    """dX = full convolution of dY with the flipped, channel-swapped filters; dW = correlation of X with dY."""
    x = cv.tensor(rng.standard_normal((1, 2, 6, 5)), requires_grad=True)
    w = cv.tensor(rng.standard_normal((3, 2, 3, 2)), requires_grad=True)
    dy = rng.standard_normal((1, 3, 4, 4))
    F.conv2d(x, w).backward(cv.tensor(dy))
    flipped = w.numpy()[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).copy()  # (C_in, K, kh, kw), spatially flipped
    full = F.conv2d(cv.tensor(dy), cv.tensor(flipped), padding=(2, 1))  # padding F-1: the "full" convolution
    np.testing.assert_allclose(x.grad.numpy(), full.numpy(), rtol=1e-10, atol=1e-12)
    # dW[k, c] = sum over pixels of dY[k] * X[c] shifted: channels of X as a batch, dY as the filters
    corr = F.conv2d(cv.tensor(x.numpy().transpose(1, 0, 2, 3)), cv.tensor(dy.transpose(1, 0, 2, 3)))  # (C, K, kh, kw)
    np.testing.assert_allclose(w.grad.numpy(), corr.numpy().transpose(1, 0, 2, 3), rtol=1e-10, atol=1e-12)


def test_same_padding_keeps_the_size_with_p_equals_f_minus_1_over_2():
    for f in (1, 3, 5, 7):
        assert F.conv_output_size(32, f, stride=1, padding=(f - 1) // 2) == 32
