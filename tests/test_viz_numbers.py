"""convolve.viz numbers (no drawing): Grad-CAM, saliency, receptive fields, feature maps, classic filters, history."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
from convolve import models, nn, viz
from convolve.train import History

rng = np.random.default_rng(0)


def _set(param: nn.Parameter, value: np.ndarray) -> None:
    param.data[...] = np.asarray(value, dtype=param.data.dtype)


def _conv_head(channels: int = 3, size: int = 6, classes: int = 4, relu: bool = False) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(conv=nn.Conv2d(1, channels, 3, padding=1))
    if relu:
        layers["relu"] = nn.ReLU()
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(channels * size * size, classes)
    return nn.Sequential(layers).double()


# ----- Grad-CAM ---------------------------------------------------------------------------------------------------

def test_grad_cam_equals_the_formula_for_a_linear_head():
    """d score_t / d A = W_t reshaped, so alpha_k = mean(W_t[k]) and cam = ReLU(sum_k alpha_k A^k)."""
    model = _conv_head()
    x = rng.standard_normal((1, 6, 6))
    a = viz.feature_maps(model, x, ["conv"])["conv"]  # (3, 6, 6)
    w = model.fc.weight.data.reshape(4, 3, 6, 6)
    for t in range(4):
        want = np.maximum(np.tensordot(w[t].mean(axis=(1, 2)), a, axes=1), 0.0)
        got = viz.grad_cam(model, x, "conv", target=t, upsample=False)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert viz.grad_cam(model, x, "conv", target=2).shape == (6, 6)


def test_grad_cam_lights_up_the_region_the_class_reads():
    """Channel 0 detects bright pixels, channel 1 dark ones; class 0 reads channel 0 only: its map is the blob."""
    model = _conv_head(channels=2, size=8, classes=2, relu=True)
    kernel = np.zeros((2, 1, 3, 3))
    kernel[0, 0, 1, 1], kernel[1, 0, 1, 1] = 1.0, -1.0
    _set(model.conv.weight, kernel)
    _set(model.conv.bias, np.zeros(2))
    head = np.zeros((2, 2, 8, 8))
    head[0, 0], head[1, 1] = 1.0, 1.0
    _set(model.fc.weight, head.reshape(2, -1))
    x = np.zeros((1, 8, 8))
    x[0, 1:4, 1:4] = 1.0  # a bright blob at the top left
    cam = viz.grad_cam(model, x, "relu", target=0)
    np.testing.assert_allclose(cam, x[0])  # alpha_0 = 1, alpha_1 = 0: exactly the blob
    with pytest.warns(UserWarning, match="the map is all zeros"):  # nothing dark in the image, and it says so
        assert np.all(viz.grad_cam(model, x, "relu", target=1) == 0)
    assert viz.predict_class(model, x) == 0


def test_grad_cam_leaves_parameter_grads_and_mode_alone():
    model = _conv_head()
    model.train()
    x = rng.standard_normal((1, 6, 6))
    viz.grad_cam(model, x, "conv", 1)
    viz.saliency(model, x, 1)
    assert model.training and all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("src,dst", [((3, 4), (7, 9)), ((5, 5), (32, 32)), ((1, 6), (4, 12)), ((8, 8), (8, 8))])
def test_bilinear_resize_matches_torch_interpolate(src, dst):
    a = rng.standard_normal(src)
    want = TF.interpolate(torch.tensor(a)[None, None], size=dst, mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(viz.bilinear_resize(a, dst), want.numpy(), rtol=1e-12, atol=1e-12)


# ----- saliency ---------------------------------------------------------------------------------------------------

def test_saliency_of_a_linear_model_is_the_weight_magnitude():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 4, 3)).double()
    x = rng.standard_normal((2, 5, 4))
    for t in range(3):
        want = np.abs(model[1].weight.data[t].reshape(2, 5, 4)).max(axis=0)
        np.testing.assert_allclose(viz.saliency(model, x, t), want, rtol=1e-12)


def test_saliency_matches_finite_differences_and_defaults_to_the_prediction():
    cv.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, 4)).double()
    x = rng.standard_normal((2, 6, 6))

    def score(z: np.ndarray, t: int) -> float:
        with cv.no_grad():
            return float(model(cv.tensor(z[None])).data[0, t])

    t = viz.predict_class(model, x)
    eps, numeric = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(*x.shape):  # 72 tiny forward pairs
        d = np.zeros_like(x)
        d[idx] = eps
        numeric[idx] = (score(x + d, t) - score(x - d, t)) / (2 * eps)
    np.testing.assert_allclose(viz.saliency(model, x), np.abs(numeric).max(axis=0), rtol=1e-6, atol=1e-9)


# ----- receptive fields -------------------------------------------------------------------------------------------

def _support_box(grad: np.ndarray) -> tuple[int, int, int, int]:
    nz = np.argwhere(grad > 0)
    (top, left), (bottom, right) = nz.min(axis=0), nz.max(axis=0) + 1
    return int(top), int(left), int(bottom), int(right)


def test_stacked_3x3_convs_see_3_5_7_pixels_and_the_gradient_agrees():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3)).double()
    x = rng.standard_normal((1, 13, 13))
    for layer, size in (("0", 3), ("1", 5), ("2", 7)):
        box = viz.receptive_field(model, layer, (1, 13, 13), 1, 2, 3)
        assert (box.height, box.width) == (size, size)
        assert (box.top, box.left) == (2, 3)  # no padding, stride 1: unit (y, x) starts at input (y, x)
        grad = viz.empirical_receptive_field(model, x, layer, 1, 2, 3)
        assert _support_box(grad) == box.clipped(13, 13)
        assert np.count_nonzero(grad) == size * size  # dense: no ReLU, no dilation


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 1), st.data())
def test_theoretical_field_bounds_the_gradient_support_through_padding_stride_dilation(channel, data):
    """Padding, stride, dilation, average pooling: the support lies in the clipped box, and spans it whenever the
    box lies inside the image (over the padding, a dilated kernel's outer taps may land on padding only)."""
    cv.manual_seed(1)
    model = nn.Sequential(OrderedDict(
        c1=nn.Conv2d(1, 2, 3, padding=1), p1=nn.AvgPool2d(2), c2=nn.Conv2d(2, 2, 3, stride=2, padding=2, dilation=2),
        t=nn.Tanh(), c3=nn.Conv2d(2, 2, 3, padding=1))).double()
    x = rng.standard_normal((1, 16, 16))
    layer = data.draw(st.sampled_from(["c1", "p1", "c2", "t", "c3"]))
    h = viz.feature_maps(model, x, [layer])[layer].shape[1]
    y, xx = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, h - 1))
    box = viz.receptive_field(model, layer, (1, 16, 16), channel, y, xx)
    grad = viz.empirical_receptive_field(model, x, layer, channel, y, xx)
    top, left, bottom, right = box.clipped(16, 16)
    outside = np.ones_like(grad, dtype=bool)
    outside[top:bottom, left:right] = False
    assert np.count_nonzero(grad) > 0 and np.all(grad[outside] == 0)
    if (top, left, bottom, right) == (box.top, box.left, box.bottom, box.right):
        assert _support_box(grad) == (top, left, bottom, right)


def test_lenet5_field_of_c3_and_c5_match_the_gradient_exactly():
    cv.manual_seed(0)
    model = models.get_model("lenet5").double()
    x = rng.standard_normal((1, 32, 32))
    box = viz.receptive_field(model, "c3", (1, 32, 32), 5, 3, 7)  # 5 + 4 + 2 * 4 = 14 pixels, jump 2
    assert (box.top, box.left, box.height, box.width) == (6, 14, 14, 14)
    grad = viz.empirical_receptive_field(model, x, "c3", 5, 3, 7)
    assert _support_box(grad) == (6, 14, 20, 28) and np.count_nonzero(grad) == 14 * 14
    c5 = viz.receptive_field(model, "c5", (1, 32, 32), 0, 0, 0)
    assert (c5.height, c5.width) == (32, 32)
    assert np.count_nonzero(viz.empirical_receptive_field(model, x, "c5", 0, 0, 0)) == 32 * 32


def test_field_box_clips_over_the_padding():
    model = nn.Sequential(nn.Conv2d(1, 1, 5, padding=2)).double()
    box = viz.receptive_field(model, "0", (1, 8, 8), 0, 0, 7)
    assert (box.top, box.left, box.bottom, box.right) == (-2, 5, 3, 10)
    assert box.clipped(8, 8) == (0, 5, 3, 8)


def test_receptive_field_errors_name_the_valid_choices():
    model = models.get_model("lenet5")
    with pytest.raises(ValueError, match=r"no layer 'c4'.*valid layers: c1, act1, s2"):
        viz.receptive_field(model, "c4", (1, 32, 32), 0, 0, 0)
    with pytest.raises(ValueError, match=r"`y` must be in \[0, 10\) for layer 'c3' with output 16@10x10, got 10"):
        viz.receptive_field(model, "c3", (1, 32, 32), 0, 10, 0)
    with pytest.raises(ValueError, match=r"`channel` must be in \[0, 6\)"):
        viz.empirical_receptive_field(model, np.zeros((1, 32, 32)), "c1", 6, 0, 0)
    with pytest.raises(ValueError, match="layer 'f6' outputs shape"):
        viz.empirical_receptive_field(model, np.zeros((1, 32, 32)), "f6", 0, 0, 0)


# ----- layers, inputs and feature maps ----------------------------------------------------------------------------

def test_feature_maps_are_the_layer_outputs():
    model = _conv_head(relu=True)
    x = rng.standard_normal((1, 1, 6, 6))
    maps = viz.feature_maps(model, x, ["conv", "relu", "fc"])
    np.testing.assert_allclose(maps["relu"], np.maximum(maps["conv"], 0))
    assert maps["conv"].shape == (3, 6, 6) and maps["fc"].shape == (4,)
    assert list(viz.feature_maps(model, x)) == ["conv"]  # default: the conv layers


def test_partial_conv_is_a_conv_layer_with_a_dense_kernel():
    model = models.get_model("lenet5", partial_c3=True)
    assert viz.conv_layer_names(model) == ["c1", "c3", "c5"]
    tiles, cols = viz.filter_tiles(model.c3.dense_weight().data)
    assert tiles.shape == (16 * 6, 5, 5) and cols == 6


def test_filter_tiles_scale_each_filter_on_its_own():
    w = rng.standard_normal((4, 3, 2, 2))
    w[1] *= 100
    tiles, cols = viz.filter_tiles(w)  # colour
    assert tiles.shape == (4, 2, 2, 3) and cols == 2
    assert np.allclose(tiles.reshape(4, -1).min(axis=1), 0) and np.allclose(tiles.reshape(4, -1).max(axis=1), 1)
    gray, cols = viz.filter_tiles(w, rgb=False)
    assert gray.shape == (12, 2, 2) and cols == 3
    np.testing.assert_allclose(gray[3:6].transpose(1, 2, 0), tiles[1])


def test_bad_layers_and_inputs_are_reported_with_the_choices():
    model = models.get_model("digits_cnn")
    x = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"no layer 'conv1'; valid layers: features, features\.0"):
        viz.feature_maps(model, x, ["conv1"])
    with pytest.raises(TypeError, match="`layers` must be a list of layer names"):
        viz.feature_maps(model, x, "features.0")
    with pytest.raises(ValueError, match=r"cannot run on an input of shape \(1, 1, 12, 12\); DigitsCNN expects"):
        viz.saliency(model, np.zeros((1, 12, 12)))
    with pytest.raises(ValueError, match=r"`input` must be one image \(C, H, W\) or a batch of one"):
        viz.saliency(model, np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"`target` must be a class index in \[0, 10\)"):
        viz.grad_cam(model, x, "features.2", target=10)
    with pytest.raises(ValueError, match=r"layer 'flatten' must output \(1, C, h, w\) maps, got \(1, 512\)"):
        viz.grad_cam(model, x, "flatten")
    with pytest.raises(TypeError, match=r"`model` must be a convolve\.nn\.Module"):
        viz.saliency(lambda z: z, x)


# ----- classic image filters --------------------------------------------------------------------------------------

def test_box_filter_border_values_depend_on_the_padding():
    ones = np.ones((3, 3))
    np.testing.assert_allclose(viz.apply_filter(ones, viz.box_kernel(3)),
                               np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) / 9)
    for mode, value in (("constant", 1.0), ("reflect", 0.0), ("replicate", 0.0), ("circular", 0.0)):
        np.testing.assert_allclose(viz.apply_filter(ones, viz.box_kernel(3), mode, value), ones)


def test_sobel_x_on_a_step_by_hand():
    step = np.tile([0.0, 0.0, 1.0, 1.0, 1.0], (5, 1))  # dark left, bright right
    np.testing.assert_allclose(viz.apply_filter(step, viz.SOBEL_X, "reflect"), np.tile([0, 4, 4, 0, 0], (5, 1)))
    zeros = viz.apply_filter(step, viz.SOBEL_X, "zeros")
    np.testing.assert_allclose(zeros[0], [0, 3, 3, 0, -3])  # the zero row above, the zero column on the right
    np.testing.assert_allclose(zeros[2], [0, 4, 4, 0, -4])
    np.testing.assert_allclose(viz.apply_filter(step, viz.SOBEL_Y, "replicate"), 0)
    np.testing.assert_allclose(viz.sobel_magnitude(step, "reflect"), np.abs(np.tile([0, 4, 4, 0, 0], (5, 1))))


def test_laplacian_sharpen_and_gaussian_by_hand():
    yy, xx = np.mgrid[:6, :7].astype(np.float64)
    bowl = xx**2 + yy**2
    np.testing.assert_allclose(viz.apply_filter(bowl, viz.LAPLACIAN)[1:-1, 1:-1], 4.0)  # 2 per axis
    img = rng.standard_normal((2, 5, 6))
    for mode in ("zeros", "reflect", "replicate"):
        np.testing.assert_allclose(viz.apply_filter(img, viz.SHARPEN, mode),
                                   img - viz.apply_filter(img, viz.LAPLACIAN, mode), atol=1e-12)
    g = np.array([np.exp(-0.5), 1.0, np.exp(-0.5)])
    np.testing.assert_allclose(viz.gaussian_kernel(3, 1.0), np.outer(g, g) / np.outer(g, g).sum())
    assert viz.gaussian_kernel(5, 2.0).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_apply_filter_matches_torch_conv_with_padding_mode(mode):
    img = rng.standard_normal((3, 7, 6))
    k = rng.standard_normal((3, 5))
    conv = torch.nn.Conv2d(1, 1, (3, 5), padding=(1, 2), padding_mode=mode, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(k)[None, None])
        want = conv(torch.tensor(img)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(viz.apply_filter(img, k, mode), want, rtol=1e-12, atol=1e-12)


def test_apply_filter_constant_one_matches_torch_pad_value():
    img = rng.standard_normal((4, 4))
    want = TF.conv2d(TF.pad(torch.tensor(img)[None, None], (1, 1, 1, 1), value=1.0),
                     torch.tensor(viz.LAPLACIAN)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(viz.apply_filter(img, viz.LAPLACIAN, "constant", 1.0), want, rtol=1e-12)


def test_filter_errors():
    with pytest.raises(ValueError, match="`padding_mode` must be one of zeros, constant, reflect"):
        viz.apply_filter(np.ones((4, 4)), viz.SOBEL_X, "mirror")
    with pytest.raises(ValueError, match="`value` only applies to padding_mode='constant'"):
        viz.apply_filter(np.ones((4, 4)), viz.SOBEL_X, "reflect", 1.0)
    with pytest.raises(ValueError, match=r"`kernel` must be a 2-D array with odd height and width, got shape \(2, 2\)"):
        viz.apply_filter(np.ones((4, 4)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"`image` must be a 2-D \(H, W\) or 3-D"):
        viz.apply_filter(np.ones(4), viz.SOBEL_X)
    with pytest.raises(ValueError, match="`size` must be a positive odd int"):
        viz.box_kernel(4)
    with pytest.raises(ValueError, match="`sigma` must be a positive number"):
        viz.gaussian_kernel(3, 0.0)


# ----- training history -------------------------------------------------------------------------------------------

def test_history_from_every_source_is_the_same(tmp_path):
    h = History()
    for epoch in range(1, 4):
        h.append({"epoch": epoch, "lr": 0.1 / epoch, "train_loss": 1.0 / epoch, "train_accuracy": 0.5 + 0.1 * epoch,
                  **({"val_loss": 1.5 / epoch} if epoch > 1 else {})})
    h.save(tmp_path)
    sources = [h, h.to_dict(), tmp_path, tmp_path / "history.csv", tmp_path / "history.json", str(tmp_path)]
    loaded = [viz.load_history(s) for s in sources]
    for got in loaded[1:]:
        assert list(got) == list(loaded[0])
        for k in got:
            np.testing.assert_allclose(got[k], loaded[0][k], equal_nan=True)
    assert np.isnan(loaded[0]["val_loss"][0])


def test_history_errors(tmp_path):
    with pytest.raises(ValueError, match="metrics have different lengths: a 2, b 1"):
        viz.load_history({"a": [1, 2], "b": [1]})
    with pytest.raises(FileNotFoundError, match=r"holds no history\.json or history\.csv"):
        viz.load_history(tmp_path)
    with pytest.raises(ValueError, match=r"must be \.csv or \.json"):
        (tmp_path / "h.txt").write_text("x")
        viz.load_history(tmp_path / "h.txt")
    with pytest.raises(TypeError, match="`source` must be a dict of lists"):
        viz.load_history([1, 2])


def test_importing_viz_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, convolve.viz; assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)
