"""convolve.viz drawings, headless: every plot writes a real PNG of the expected pixel size that is not blank."""

from __future__ import annotations

import struct
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import convolve as cv
from convolve import models, nn, viz

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure
from matplotlib.image import imread

PNG = b"\x89PNG\r\n\x1a\n"
rng = np.random.default_rng(0)


def check_png(path: Path, fig: Figure) -> np.ndarray:
    """The file is a PNG of the figure's pixel size with some contrast; returns its pixels."""
    raw = path.read_bytes()
    assert raw[:8] == PNG and raw[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", raw[16:24])
    want = np.round(fig.get_size_inches() * fig.dpi).astype(int)
    assert (width, height) == tuple(want), f"{path}: {width}x{height} pixels, expected {tuple(want)}"
    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].var() > 1e-4, f"{path} is blank"
    return pixels


@pytest.fixture(scope="module")
def lenet():
    cv.manual_seed(0)
    return models.get_model("lenet5")


@pytest.fixture(scope="module")
def digit():
    x = np.zeros((1, 32, 32), np.float32)
    x[0, 8:24, 14:18] = 1.0  # a "1"
    return x + 0.05 * rng.standard_normal((1, 32, 32)).astype(np.float32)


def test_plot_filters_grayscale_multichannel_colour_and_partial(tmp_path, lenet):
    fig = viz.plot_filters(lenet, "c1", tmp_path / "c1.png")
    assert isinstance(fig, Figure)
    check_png(tmp_path / "c1.png", fig)
    fig = viz.plot_filters(lenet, "c5", tmp_path / "c5.png", max_filters=8, max_channels=4)
    check_png(tmp_path / "c5.png", fig)
    assert "not shown: 112 filters, 12 channels" in fig.axes[0].get_title()
    cv.manual_seed(1)
    colour = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 8, 5)))
    check_png(tmp_path / "rgb.png", viz.plot_filters(colour, "conv", tmp_path / "rgb.png"))
    partial = models.get_model("lenet5", partial_c3=True)
    check_png(tmp_path / "c3.png", viz.plot_filters(partial, "c3", tmp_path / "c3.png"))


def test_plot_filters_rejects_non_conv_layers_listing_the_conv_layers(lenet):
    with pytest.raises(ValueError, match=r"layer 'f6' \(Linear\) is not a 2-D convolution; valid conv layers: c1, c3, "
                                         r"c5"):
        viz.plot_filters(lenet, "f6")
    with pytest.raises(ValueError, match=r"LeNet5 has no layer 'conv1'; valid conv layers: c1, c3, c5"):
        viz.plot_filters(lenet, "conv1")
    with pytest.raises(ValueError, match="`max_filters` must be a positive int"):
        viz.plot_filters(lenet, "c1", max_filters=0)


def test_plot_feature_maps(tmp_path, lenet, digit):
    fig = viz.plot_feature_maps(lenet, digit, ["c1", "s2", "c3"], tmp_path / "maps.png")
    check_png(tmp_path / "maps.png", fig)
    assert len(fig.axes) == 4
    fig = viz.plot_feature_maps(lenet, digit, None, tmp_path / "default.png", per_map=True, max_channels=4)
    check_png(tmp_path / "default.png", fig)
    with pytest.raises(ValueError, match="none of the layers"):
        viz.plot_feature_maps(lenet, digit, ["f6"])


def test_plot_receptive_field(tmp_path, lenet, digit):
    fig = viz.plot_receptive_field(lenet, digit, "c3", 2, 4, 4, tmp_path / "rf.png")
    check_png(tmp_path / "rf.png", fig)
    assert "field 14x14" in fig.axes[0].get_title() and "nonzero 14x14" in fig.axes[1].get_title()


def test_plot_saliency_and_grad_cam(tmp_path, lenet, digit):
    fig = viz.plot_saliency(lenet, digit, path=tmp_path / "s.png", classes=[f"d{i}" for i in range(10)])
    check_png(tmp_path / "s.png", fig)
    assert fig.axes[0].get_title().startswith("input (predicted d")
    fig = viz.plot_grad_cam(lenet, digit, "c3", target=1, path=tmp_path / "g.png")
    check_png(tmp_path / "g.png", fig)
    assert "class 1" in fig.axes[1].get_title()


def test_plot_training_curves(tmp_path):
    history = {"epoch": [1, 2, 3], "lr": [1e-3, 5e-4, 1e-4], "train_loss": [2.0, 1.0, 0.5],
               "val_loss": [2.1, 1.2, 0.7], "train_accuracy": [0.3, 0.6, 0.8], "val_accuracy": [0.3, 0.5, 0.7]}
    fig = viz.plot_training_curves(history, tmp_path / "curves.png")
    check_png(tmp_path / "curves.png", fig)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "learning rate"]
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train loss", "validation loss"]
    fig = viz.plot_training_curves(history, eval_split="test", loss_note="with label smoothing 0.1")
    assert fig.axes[0].get_title() == "loss (with label smoothing 0.1)"
    assert [line.get_label() for line in fig.axes[1].get_lines()] == ["train accuracy", "test accuracy"]
    with pytest.raises(ValueError, match=r"has no loss or accuracy metric.*its metrics are: epoch, lr"):
        viz.plot_training_curves({"epoch": [1], "lr": [0.1]})


def test_plot_confusion_matrix(tmp_path):
    m = rng.integers(0, 50, (10, 10))
    fig = viz.plot_confusion_matrix(m, [str(i) for i in range(10)], tmp_path / "cm.png", normalize=True)
    check_png(tmp_path / "cm.png", fig)
    with pytest.raises(ValueError, match=r"must be a square \(K, K\) array of counts, got shape \(2, 3\)"):
        viz.plot_confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="`classes` has 2 names but `matrix` is 3x3"):
        viz.plot_confusion_matrix(np.zeros((3, 3), int), ["a", "b"])


def test_plot_filters_demo(tmp_path):
    fig = viz.plot_filters_demo(path=tmp_path / "demo.png")
    check_png(tmp_path / "demo.png", fig)
    assert [ax.get_title() for ax in fig.axes[:4]] == ["padded: zeros", "padded: constant 1", "padded: reflect",
                                                      "padded: replicate"]
    check_png(tmp_path / "img.png", viz.plot_filters_demo(rng.random((3, 20, 24)), tmp_path / "img.png"))


def test_svg_by_extension_and_bad_paths(tmp_path):
    viz.plot_filters_demo(path=tmp_path / "sub" / "demo.svg")
    assert b"<svg" in (tmp_path / "sub" / "demo.svg").read_bytes()[:2000]
    with pytest.raises(ValueError, match=r"`path` must end in \.png or \.svg, got '.*demo\.jpg'"):
        viz.plot_filters_demo(path=tmp_path / "demo.jpg")


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"plot_filters_demo: plotting needs matplotlib.*'convolve\[viz\]'"):
        viz.plot_filters_demo()
    assert viz.apply_filter(np.ones((3, 3)), viz.box_kernel(3)).shape == (3, 3)  # numbers need no matplotlib
