"""`convolve.viz.animate` and `convolve visualize animate`: every number drawn is computed by convolve's ops on the
displayed arrays, and the finished output equals F.conv2d / pooling / autograd's gradients (and PyTorch's)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.nn.functional as F
from convolve import viz
from convolve.cli import main
from convolve.viz.animate import example_arrays

PIL = pytest.importorskip("PIL.Image", reason="animations need Pillow (pip install pillow)")


def _forward(x, w, b, **kw):
    mode = kw.pop("padding_mode", "zeros")
    pad = kw.pop("padding", 0)
    xt = cv.tensor(x[None])
    if mode != "zeros":
        xt, pad = F.pad(xt, (pad,) * 4, mode=mode), 0
    return F.conv2d(xt, cv.tensor(w), None if b is None else cv.tensor(b), padding=pad, **kw).numpy()[0]


@settings(max_examples=12, deadline=None)
@given(st.data())
def test_conv_last_frame_equals_conv2d(data):
    c, groups = data.draw(st.sampled_from([(1, 1), (2, 1), (2, 2)]))
    out = data.draw(st.sampled_from([1, 2]))
    out = out * groups if out < groups else out
    stride, dilation = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    k = data.draw(st.integers(1, 3))
    pad = data.draw(st.integers(0, 1))
    mode = data.draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    size = (c, data.draw(st.integers(dilation * (k - 1) + 2, 6)), data.draw(st.integers(dilation * (k - 1) + 2, 6)))
    bias = data.draw(st.booleans())
    s = viz.sweep("conv", size, out, k, stride=stride, padding=pad, dilation=dilation, groups=groups,
                  padding_mode=mode, bias=bias, seed=3)
    a = example_arrays(size, out, (k, k), groups, bias, 3)
    want = _forward(a["input"], a["weight"], a["bias"], stride=stride, padding=pad, dilation=dilation, groups=groups,
                    padding_mode=mode)
    np.testing.assert_allclose(s.final, want, rtol=1e-12, atol=1e-12)
    assert len(s.steps) == s.final.size
    st0 = s.steps[0]
    assert st0.value == pytest.approx(st0.products.sum() + (a["bias"][0] if bias else 0))


@pytest.mark.parametrize("mode", ["max-pool", "avg-pool"])
def test_pooling_matches_functional(mode):
    s = viz.sweep(mode, (2, 6, 5), kernel_size=3, stride=2, padding=1)
    x = cv.tensor(example_arrays((2, 6, 5), 1, (3, 3), 1, False, 0)["input"])
    fn = F.max_pool2d if mode == "max-pool" else F.avg_pool2d
    np.testing.assert_allclose(s.final, fn(x, 3, 2, 1).numpy(), rtol=1e-12)


@pytest.mark.parametrize("stride, padding, dilation, groups, c, k, kernel", [
    (1, 0, 1, 1, 1, 1, (3, 3)), (2, 1, 1, 1, 2, 2, (3, 3)), (2, 1, 2, 2, 2, 2, (3, 3)), (3, 0, 1, 1, 1, 3, (3, 3)),
    (2, 1, 1, 1, 1, 1, (2, 3)),
])
def test_backward_modes_equal_autograd_and_pytorch(stride, padding, dilation, groups, c, k, kernel):
    size = (c, 4, 4) if dilation > 1 else (c, 6, 5)
    a = example_arrays(size, k, kernel, groups, False, 0)
    x, w = cv.tensor(a["input"][None], requires_grad=True), cv.tensor(a["weight"], requires_grad=True)
    y = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    g = np.random.default_rng(1).integers(-1, 3, size=y.shape[1:]).astype(np.float64)
    y.backward(cv.tensor(g[None]))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    s_in = viz.sweep("backward-input", size, k, kernel, **kw)
    s_w = viz.sweep("backward-weight", size, k, kernel, **kw)
    np.testing.assert_allclose(s_in.final, x.grad.numpy()[0], rtol=1e-12)
    np.testing.assert_allclose(s_w.final, w.grad.numpy(), rtol=1e-12)
    xt, wt = torch.tensor(a["input"][None], requires_grad=True), torch.tensor(a["weight"], requires_grad=True)
    torch.nn.functional.conv2d(xt, wt, **kw).backward(torch.tensor(g[None]))
    np.testing.assert_allclose(s_w.final, wt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(s_in.final, xt.grad.numpy()[0], rtol=1e-12)
    assert np.array_equal(s_in.kernels[0][0], a["weight"][0, 0, ::-1, ::-1])  # the flipped kernel
    if padding:
        assert s_in.crop == (padding, padding, *size[1:])


def test_gif_frames(tmp_path):
    s = viz.animate(tmp_path / "a.gif", "conv", (1, 4, 4), kernel_size=3, padding=1, bias=True, fps=4)
    with PIL.open(tmp_path / "a.gif") as im:
        assert im.format == "GIF" and im.n_frames == len(s.steps) + 1 == 17
        assert im.info["duration"] == 250
    assert (tmp_path / "a.gif").stat().st_size < 200_000


@pytest.mark.parametrize("kwargs, needle", [
    (dict(input_size=(1, 13, 13)), "readable up to 12x12"),
    (dict(input_size=(1, 8, 8), padding=3), "readable up to 12x12"),
    (dict(input_size=(4, 5, 5)), "at most 3 are drawn"),
    (dict(input_size=(1, 5, 5), out_channels=5), "at most 4"),
    (dict(mode="backward-input", input_size=(3, 12, 12), out_channels=1, padding=0, kernel_size=1),
     "at most 160"),
    (dict(mode="spin"), "`mode` must be one of"),
    (dict(mode="backward-input", padding=1, padding_mode="reflect"), "zero padding only"),
    (dict(input_size=(2, 5, 5), groups=2, out_channels=3), "divisible by `groups`"),
])
def test_unreadable_or_bad_settings_are_refused(kwargs, needle):
    kwargs = {"mode": "conv", **kwargs}
    with pytest.raises(ValueError, match=needle):
        viz.sweep(kwargs.pop("mode"), **kwargs)


def test_path_must_be_gif(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.gif"):
        viz.animate(tmp_path / "a.png", "conv", (1, 3, 3))


def test_cli(tmp_path, capsys):
    code = main(["visualize", "animate", "--mode", "max-pool", "--input", "1x4x4", "--kernel", "2", "--stride", "2",
                 "--out", str(tmp_path)])
    assert code == 0 and (tmp_path / "animate-max-pool.gif").is_file()
    code = main(["visualize", "animate", "--input", "1x30x30", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "readable up to 12x12" in err and len(err.strip().splitlines()) == 1
