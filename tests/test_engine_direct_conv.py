"""The Numba direct-convolution kernel forced on: equal to the reference conv2d (forward, dX, dW, db) in float64
(1e-12) and float32 (1e-5), on random shapes, on 1 and 2 threads, and to PyTorch on ResNet-20-like layers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convolve as cv
import convolve.nn.functional as F
from convolve.engines import workspace
from convolve.engines.compiled.direct_conv import DirectConv2d
from convolve.engines.policy import policy
from tests import engine_helpers
from tests.oracle import compare_with_torch

pytest.importorskip("numba")

ENGINE = "direct_test"
rng = np.random.default_rng(12)


@pytest.fixture
def direct() -> Iterator[None]:
    """Every call the direct kernel supports runs on it (the rest on the reference)."""
    policy.register(ENGINE, ["convolve.engines.compiled.direct_conv:DirectConv2d"], forced=True)
    with cv.use_engine(ENGINE):
        yield


def _case(seed: int) -> tuple[dict, list[np.ndarray | None]]:
    """A random supported call: batch 1-3, C 1-20, K 1-40 (not only multiples of 16), kernel 1-5, stride 1-3,
    symmetric or asymmetric padding below the kernel size, with or without bias."""
    r = np.random.default_rng(seed)
    kh, kw = int(r.integers(1, 6)), int(r.integers(1, 6))
    pads = ((int(r.integers(0, kh)), int(r.integers(0, kh))), (int(r.integers(0, kw)), int(r.integers(0, kw))))
    stride = int(r.integers(1, 4))
    h = int(r.integers(max(1, kh - pads[0][0] - pads[0][1]), 13))
    w = int(r.integers(max(1, kw - pads[1][0] - pads[1][1]), 13))
    n, c, k = int(r.integers(1, 4)), int(r.integers(1, 21)), int(r.integers(1, 41))
    x, weight = r.standard_normal((n, c, h, w)), r.standard_normal((k, c, kh, kw))
    bias = r.standard_normal(k) if r.random() < 0.5 else None
    return {"stride": stride, "pads": pads}, [x, weight, bias]


def _conv(geom: dict):
    """conv2d with the case's stride and (before, after) padding pairs."""
    def fn(x, w, b=None):
        return F.conv2d(x, w, b, stride=geom["stride"], padding=geom["pads"])
    return fn


def _run(engine: str, geom: dict, arrays: list, dtype: np.dtype) -> list[np.ndarray]:
    with cv.use_engine(engine):
        return engine_helpers.run_with_grads(_conv(geom), arrays, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(24))
def test_equals_reference_on_random_shapes(seed: int, dtype: np.dtype) -> None:
    geom, arrays = _case(seed)
    policy.register(ENGINE, ["convolve.engines.compiled.direct_conv:DirectConv2d"], forced=True)
    got, want = _run(ENGINE, geom, arrays, dtype), _run("reference", geom, arrays, dtype)
    engine_helpers.assert_engine_equals_reference(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layer", [(16, 10, 16, 1), (16, 9, 32, 2), (32, 6, 32, 1), (6, 14, 16, 1)])
def test_equals_reference_on_resnet_and_lenet_layers(layer: tuple[int, int, int, int], dtype: np.dtype) -> None:
    c, h, k, stride = layer
    kernel, padding = (5, 0) if c == 6 else (3, 1)
    arrays = [rng.standard_normal((3, c, h, h)), rng.standard_normal((k, c, kernel, kernel)), rng.standard_normal(k)]
    geom = {"stride": stride, "pads": ((padding,) * 2,) * 2}
    policy.register(ENGINE, ["convolve.engines.compiled.direct_conv:DirectConv2d"], forced=True)
    got, want = _run(ENGINE, geom, arrays, dtype), _run("reference", geom, arrays, dtype)
    engine_helpers.assert_engine_equals_reference(got, want, dtype)


@pytest.mark.parametrize("seed", range(4))
def test_row_and_plane_layout_copies_give_the_same_bits(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """The layout copies go row by row (few channels) or plane by plane: both move the same values."""
    from convolve.engines.compiled import direct_conv

    geom, arrays = _case(100 + seed)
    policy.register(ENGINE, ["convolve.engines.compiled.direct_conv:DirectConv2d"], forced=True)
    results = []
    for channels in (0, 1 << 20):  # every image plane by plane, then every image row by row
        monkeypatch.setattr(direct_conv, "ROW_FIRST_CHANNELS", channels)
        results.append(_run(ENGINE, geom, arrays, np.float32))
    for by_plane, by_row in zip(*results):
        np.testing.assert_array_equal(by_plane, by_row)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("seed", range(4))
def test_one_pass_stride1_backward_gives_the_bits_of_two(monkeypatch: pytest.MonkeyPatch, seed: int,
                                                         threads: int) -> None:
    """A stride-1 layer's dX and dW in one pass over the chunks equal the separate input- and weight-gradient
    passes bit for bit (random kernels, paddings and channel counts above the few-channel limit)."""
    from convolve.engines.compiled import direct_conv

    r = np.random.default_rng(200 + seed)
    kh, kw = int(r.integers(1, 6)), int(r.integers(1, 6))
    pads = ((int(r.integers(0, kh)), int(r.integers(0, kh))), (int(r.integers(0, kw)), int(r.integers(0, kw))))
    c, k = int(r.integers(direct_conv.FEW_INPUT_CHANNELS + 1, 40)), int(r.integers(1, 40))
    x = r.standard_normal((int(r.integers(1, 40)), c, int(r.integers(kh, 14)), int(r.integers(kw, 14))), np.float32)
    weight = r.standard_normal((k, c, kh, kw), np.float32)
    grad = r.standard_normal((x.shape[0], k, x.shape[2] + sum(pads[0]) - kh + 1, x.shape[3] + sum(pads[1]) - kw + 1),
                             np.float32)
    monkeypatch.setattr(workspace, "_override", threads)
    results = []
    for fused in (False, True):
        monkeypatch.setattr(direct_conv, "FUSED_STRIDE1_BACKWARD", fused)
        dx = np.empty_like(x)
        results.append((dx, direct_conv.direct_backward(x, grad, weight, (1, 1), (1, 1), pads, dx, True)))
    for separate, one_pass in zip(*results):
        np.testing.assert_array_equal(separate, one_pass)


@pytest.mark.parametrize("seed", range(4))
def test_skipping_the_zero_border_rows_keeps_the_bits(seed: int) -> None:
    """The per-image kernels skip the kernel rows that fall on the zero border: summing their zero products
    instead (the image rows given as the whole padded buffer) gives the same bits, forward and weight gradient."""
    from convolve.engines.compiled import direct_conv

    r = np.random.default_rng(300 + seed)
    kh, kw, s = int(r.integers(1, 6)), int(r.integers(1, 6)), int(r.integers(1, 3))
    c, k = int(r.integers(1, 20)), int(r.integers(1, 40))
    top, bottom, left = int(r.integers(0, kh)), int(r.integers(0, kh)), int(r.integers(0, kw))
    h, w = int(r.integers(kh, 12)), int(r.integers(kw, 12))
    hp, wp = h + top + bottom, w + left + int(r.integers(0, kw))
    oh, ow = (hp - kh) // s + 1, (wp - kw) // s + 1
    kp = direct_conv._padded_k(k)
    direct_conv._kernels(np.float32)
    xp = np.zeros((hp, wp, c), np.float32)
    xp[top:top + h, left:left + w] = r.standard_normal((h, w, c))
    filters = r.standard_normal(kh * kw * c * kp).astype(np.float32)
    g = r.standard_normal(oh * ow * kp).astype(np.float32)
    tmp = np.zeros(2 * direct_conv.KB * direct_conv.P_FWD, np.float32)
    outputs = []
    for rows in ((top, top + h), (0, hp)):  # the image rows, then every row of the buffer
        y, dw = np.zeros(oh * ow * kp, np.float32), np.zeros(kh * kw * c * kp, np.float32)
        direct_conv._fwd_image(xp.reshape(-1), filters, y, c, hp, wp, kp, kh, kw, oh, ow, s, *rows, tmp)
        direct_conv._dw_image(xp.reshape(-1), g, dw, c, hp, wp, kp, kh, kw, 0, oh, ow, s, *rows, tmp)
        outputs.append((y, dw))
    for skipped, summed in zip(*outputs):
        np.testing.assert_array_equal(skipped, summed)


def test_inf_weights_on_the_border_rows_give_pytorchs_nan_pattern(direct: None) -> None:
    """An inf in a filter's top row meets only zero padding on the first output row: PyTorch (oneDNN) and this
    kernel skip those taps, so that row stays finite; the other rows are NaN in both."""
    x = torch.from_numpy(rng.standard_normal((2, 16, 8, 8)).astype(np.float32))
    weight = torch.from_numpy(rng.standard_normal((16, 16, 3, 3)).astype(np.float32))
    weight[:, :, 0, :] = float("inf")
    want = TF.conv2d(x, weight, padding=1).numpy()
    got = F.conv2d(cv.tensor(x.numpy()), cv.tensor(weight.numpy()), padding=1).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isfinite(got[:, :, 0]).all() and np.isnan(got[:, :, 1:]).all()


def test_kernel_takes_the_calls(direct: None) -> None:
    x, w = cv.tensor(rng.standard_normal((2, 16, 8, 8))), cv.tensor(rng.standard_normal((16, 16, 3, 3)))
    geometry = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1), "groups": 1}
    from convolve.nn.functional.conv import Conv2dFunction

    assert policy.select(Conv2dFunction, x.numpy(), w.numpy(), None, **geometry) is DirectConv2d
    for unsupported in ({"groups": 2}, {"dilation": (2, 2)}, {"stride": (1, 2)}, {"padding": ((3, 3), (1, 1))}):
        args = {**geometry, **unsupported}
        weight = w.numpy()[:, :8] if "groups" in unsupported else w.numpy()
        assert not DirectConv2d.supports(x.numpy(), weight, None, **args)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layer", [(16, 8, 16, 1, 1), (16, 8, 32, 2, 1), (6, 14, 16, 1, 0)])
def test_matches_torch(direct: None, layer: tuple[int, int, int, int, int], dtype: np.dtype) -> None:
    c, h, k, stride, padding = layer
    kernel = 5 if c == 6 else 3
    x, w, b = rng.standard_normal((2, c, h, h)), rng.standard_normal((k, c, kernel, kernel)), rng.standard_normal(k)
    compare_with_torch(lambda a, ww, bb: F.conv2d(a, ww, bb, stride=stride, padding=padding),
                       lambda a, ww, bb: TF.conv2d(a, ww, bb, stride=stride, padding=padding), [x, w, b], dtype)


@pytest.mark.parametrize("stride", [1, 2])
def test_two_threads_equal_reference_and_are_reproducible(stride: int) -> None:
    """40 images: 9 guided chunks over 2 threads; dW (per-chunk sums added in chunk order) is the same run to run."""
    x, w = rng.standard_normal((40, 16, 8, 8)), rng.standard_normal((32, 16, 3, 3))
    geom = {"stride": stride, "pads": ((1, 1), (1, 1))}
    policy.register(ENGINE, ["convolve.engines.compiled.direct_conv:DirectConv2d"], forced=True)
    cv.set_num_threads(2)
    try:
        first = _run(ENGINE, geom, [x, w, None], np.float32)
        second = _run(ENGINE, geom, [x, w, None], np.float32)
    finally:
        cv.set_num_threads(None)
    want = _run("reference", geom, [x, w, None], np.float32)
    engine_helpers.assert_engine_equals_reference(first, want, np.float32)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_nan_and_inf_propagate_like_the_reference(direct: None) -> None:
    x, w = rng.standard_normal((2, 16, 6, 6)), rng.standard_normal((16, 16, 3, 3))
    x[0, 3, 2, 2], x[1, 5, 0, 4] = np.nan, np.inf
    geom = {"stride": 1, "pads": ((1, 1), (1, 1))}
    got = _run(ENGINE, geom, [x, w, None], np.float32)
    want = _run("reference", geom, [x, w, None], np.float32)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b))


def test_not_supported_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from convolve.engines import compiled

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real(name, *a))
    monkeypatch.setattr(compiled, "_installed", None)  # looked up again, through the patched find_spec
    x, w = np.zeros((1, 16, 8, 8), np.float32), np.zeros((16, 16, 3, 3), np.float32)
    assert not DirectConv2d.supports(x, w, None, stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)


def test_numba_is_not_imported_with_convolve() -> None:
    code = ("import sys, convolve, convolve.engines.compiled.direct_conv; "
            "assert 'numba' not in sys.modules, 'numba imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_prefers_the_measured_layers() -> None:
    """ResNet-20's 3x3 layers and LeNet-5's C3 (float32); not 4x4 images, 1x1, 128 channels, float64."""
    def prefers(c: int, h: int, k: int, kernel: int = 3, stride: int = 1, dtype: type = np.float32,
                batch: int = 128) -> bool:  # batch 128, as measured
        x, w = np.zeros((batch, c, h, h), dtype), np.zeros((k, c, kernel, kernel), dtype)
        pad = (kernel // 2,) * 2 if kernel == 3 else (0, 0)
        return DirectConv2d.prefers(x, w, None, stride=(stride,) * 2, padding=(pad, pad), dilation=(1, 1), groups=1)

    assert all([prefers(16, 32, 16), prefers(16, 32, 32, stride=2), prefers(32, 16, 32), prefers(32, 16, 64, stride=2),
                prefers(64, 32, 64), prefers(64, 8, 64), prefers(6, 14, 16, kernel=5)])
    assert not any([prefers(64, 4, 64), prefers(16, 32, 32, kernel=1, stride=2), prefers(128, 16, 128),
                    prefers(16, 32, 16, dtype=np.float64), prefers(3, 32, 16), prefers(16, 64, 16),
                    prefers(16, 32, 16, batch=2),  # 2^17 values or fewer: NumPy (no Numba for small models)
                    prefers(16, 8, 32, batch=256)])  # the digits job's second layer at its evaluation batch
