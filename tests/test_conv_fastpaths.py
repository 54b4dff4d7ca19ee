"""Every conv2d fast path forced on, against PyTorch (forward and every gradient, float64 and float32).

conv2d picks an engine per layer (conv.conv_path): 'small' (NCHW-native im2col, C*kh*kw small), 'gemm'
(channels-last im2col + GEMM; its stride-1 input gradient is either a flipped-filter convolution or col2im)
and 'depthwise' (shifted multiply-add). Each test below pins one choice with monkeypatch, so that every path
is checked on the whole hypothesis sweep of configurations, with tiny chunks and worker threads as well.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.nn.functional as F
from convolve import _threads
from convolve.nn.functional import _im2col
from convolve.nn.functional import conv as conv_mod
from tests.oracle import compare_with_torch

DTYPES = [np.float64, np.float32]
rng = np.random.default_rng(1)
SWEEP = settings(max_examples=25, deadline=None)


@st.composite
def cases(draw, depthwise=False, groups_max=3):
    """(x, w, b, kwargs, dtype): stride, dilation, int/tuple/'same'/'valid' padding, odd and even kernels."""
    n = draw(st.integers(1, 3))
    if depthwise:
        groups, c_g, k_g = draw(st.integers(2, 5)), 1, draw(st.integers(1, 2))
    else:
        groups, c_g, k_g = draw(st.integers(1, groups_max)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if padding == "int":
        padding = draw(st.integers(0, 3))
    elif padding == "tuple":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 4)) for k, d in zip(kernel, dilation))
    x = rng.standard_normal((n, groups * c_g, *spatial))
    w = rng.standard_normal((groups * k_g, c_g, *kernel))
    b = rng.standard_normal(groups * k_g) if draw(st.booleans()) else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, w, b, kwargs, draw(st.sampled_from(DTYPES))


def _check(case):
    x, w, b, kwargs, dtype = case
    if b is None:
        compare_with_torch(lambda a, c: F.conv2d(a, c, **kwargs), lambda a, c: TF.conv2d(a, c, **kwargs), [x, w], dtype)
    else:
        compare_with_torch(lambda a, c, d: F.conv2d(a, c, d, **kwargs), lambda a, c, d: TF.conv2d(a, c, d, **kwargs),
                           [x, w, b], dtype)


def _force(path):
    """A conv_path replacement that returns `path` (the depthwise engine only where it applies)."""
    original = conv_mod.conv_path

    def forced(channels, weight_shape, groups, stride=(1, 1)):
        real = original(channels, weight_shape, groups, stride)
        if path == "small" and groups != 1:
            return real
        return "gemm" if path == "gemm" and real == "depthwise" else (path if path != "depthwise" else real)

    return forced


@SWEEP
@given(cases(groups_max=1))
def test_small_channel_path(case):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_mod, "conv_path", _force("small"))
        _check(case)


@SWEEP
@given(cases())
def test_gemm_path_with_flipped_filter_input_gradient(case):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_mod, "conv_path", _force("gemm"))
        mp.setattr(conv_mod, "FLIPPED_MIN_CHANNELS", 1)  # every stride-1 layer: dX = conv(dY, flipped W)
        _check(case)


@SWEEP
@given(cases())
def test_gemm_path_with_col2im_input_gradient(case):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_mod, "conv_path", _force("gemm"))
        mp.setattr(conv_mod, "FLIPPED_MIN_CHANNELS", 10**9)  # never flipped: dX = col2im(dY @ W^T)
        _check(case)


@SWEEP
@given(cases(depthwise=True))
def test_depthwise_path(case):
    stride = case[3]["stride"]
    square = stride[0] == stride[1]
    assert (conv_mod.conv_path(case[0].shape[1], case[1].shape, case[3]["groups"], stride) == "depthwise") == square
    _check(case)


@SWEEP
@given(cases(depthwise=True))
def test_depthwise_layers_through_the_gemm_path(case):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_mod, "conv_path", _force("gemm"))
        _check(case)


@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1), dict(stride=3, dilation=(2, 1), padding=(0, 2)),
                                    dict(padding="same", dilation=2)])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_flat_grid_strides_dilations_multipliers(kwargs, multiplier):
    """The flat-grid taps: square strides, unequal dilations, asymmetric padding, depth multiplier."""
    x, w = rng.standard_normal((2, 3, 9, 11)), rng.standard_normal((3 * multiplier, 1, 3, 2))
    assert conv_mod.conv_path(3, w.shape, 3, (2, 2)) == "depthwise"
    for dtype in DTYPES:
        _check((x, w, rng.standard_normal(3 * multiplier), dict(kwargs, groups=3), dtype))


@pytest.mark.parametrize("path", ["small", "gemm", "depthwise"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_tiny_chunks_on_worker_threads(monkeypatch, path, threads):
    """One image per chunk, chunks spread over threads: per-thread buffers and dW partial sums add up."""
    monkeypatch.setattr(_im2col, "COLS_BUDGET_BYTES", 1)
    monkeypatch.setattr(conv_mod, "FLIPPED_MIN_CHANNELS", 1)
    monkeypatch.setattr(conv_mod, "conv_path", _force(path))
    monkeypatch.setattr(_threads, "_override", threads)
    groups = 4 if path == "depthwise" else 1
    x, w, b = rng.standard_normal((7, 4, 9, 8)), rng.standard_normal((8, 4 // groups, 3, 3)), rng.standard_normal(8)
    for kwargs in (dict(padding=1), dict(stride=2, padding=(2, 0), dilation=(1, 2))):
        _check((x, w, b, dict(kwargs, groups=groups), np.float64))


def test_channels_last_views_give_the_same_numbers(monkeypatch):
    """With CHANNELS_LAST the output and dx are NCHW views of NHWC memory; values are unchanged."""
    monkeypatch.setattr(conv_mod, "CHANNELS_LAST", True)
    monkeypatch.setattr(conv_mod, "conv_path", _force("gemm"))
    x = cv.tensor(rng.standard_normal((2, 16, 6, 6)))
    w = cv.tensor(rng.standard_normal((16, 16, 3, 3)), requires_grad=True)
    y = F.conv2d(F.conv2d(x, w, padding=1), w, padding=1)
    assert not y.data.flags.c_contiguous and y.data.transpose(0, 2, 3, 1).flags.c_contiguous
    _check((x.numpy(), w.numpy(), None, dict(padding=1), np.float64))


def test_paths_are_chosen_as_documented():
    assert conv_mod.conv_path(1, (6, 1, 5, 5), 1) == "small"  # LeNet C1
    assert conv_mod.conv_path(3, (64, 3, 3, 3), 1) == "small"  # RGB input layer
    assert conv_mod.conv_path(64, (64, 64, 3, 3), 1) == "gemm"
    assert conv_mod.conv_path(64, (64, 1, 3, 3), 64) == "depthwise"
    assert conv_mod.conv_path(64, (128, 1, 3, 3), 64) == "depthwise"  # depth multiplier 2
    assert conv_mod.conv_path(4, (4, 2, 3, 3), 2) == "gemm"  # grouped, not depthwise
    assert conv_mod.conv_path(128, (64, 128, 1, 1), 1) == "small"  # 1x1: the image is its column matrix


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=2), dict(padding=1), dict(stride=(1, 2), padding=(0, 1))])
@pytest.mark.parametrize("dtype", DTYPES)
def test_1x1_convolutions(kwargs, dtype):
    """1x1 stride 1 unpadded: no im2col copy, dX = W^T @ dY; strided/padded 1x1 take the gather + col2im."""
    x, w, b = rng.standard_normal((3, 12, 5, 6)), rng.standard_normal((7, 12, 1, 1)), rng.standard_normal(7)
    assert conv_mod.conv_path(12, w.shape, 1) == "small"
    _check((x, w, b, kwargs, dtype))
    _check((x, w, None, kwargs, dtype))


def test_dtype_and_contiguity_are_kept():
    for path, c in (("small", 3), ("gemm", 16), ("depthwise", 16), ("small", 16)):
        for dtype in (np.float32, np.float64):
            x = cv.tensor(rng.standard_normal((2, c, 5, 5)).astype(dtype), requires_grad=True)
            shape = {"depthwise": (c, 1, 3, 3), "small": (4, c, 1, 1)}.get(path, (4, c, 3, 3))
            w = cv.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)
            groups = c if path == "depthwise" else 1
            assert conv_mod.conv_path(c, w.shape, groups) == path
            y = F.conv2d(x, w, padding=1, groups=groups)
            y.sum().backward()
            assert y.dtype == dtype and x.grad.dtype == dtype and w.grad.dtype == dtype
            assert y.data.flags.c_contiguous and x.grad.data.flags.c_contiguous


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError, match="set_num_threads: `n` must be a positive int or None, got 0"):
        _threads.set_num_threads(0)
    with pytest.raises(ValueError, match="positive int or None, got True"):
        _threads.set_num_threads(True)


def test_threaded_weight_gradients_are_bit_reproducible(monkeypatch):
    """Chunks go to threads statically, so per-thread partial sums of dW are always added alike."""
    monkeypatch.setattr(_im2col, "COLS_BUDGET_BYTES", 1)
    monkeypatch.setattr(_threads, "_override", 3)
    x = cv.tensor(rng.standard_normal((23, 16, 7, 7)).astype(np.float32))
    grads = []
    for _ in range(4):
        w = cv.tensor(np.linspace(-1, 1, 16 * 16 * 9, dtype=np.float32).reshape(16, 16, 3, 3), requires_grad=True)
        F.conv2d(x, w, padding=1).sum().backward()
        grads.append(w.grad.numpy())
    assert all(np.array_equal(grads[0], g) for g in grads[1:])
