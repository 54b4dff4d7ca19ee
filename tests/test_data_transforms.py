"""Batch transforms: ToTensor, Normalize and Pad against PyTorch; random crops and flips checked image by image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
from convolve.data.transforms import Compose, Normalize, Pad, RandomCrop, RandomHorizontalFlip, ToTensor

rng = np.random.default_rng(0)


def batch(n=3, c=2, h=5, w=6, dtype=np.float32):
    return rng.standard_normal((n, c, h, w)).astype(dtype)


def test_to_tensor_grayscale_and_colour():
    gray = rng.integers(0, 256, (4, 5, 6), dtype=np.uint8)
    out = ToTensor()(gray)
    assert out.shape == (4, 1, 5, 6) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, torch.from_numpy(gray).unsqueeze(1).float().div(255).numpy(), rtol=1e-6)
    colour = rng.integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    out = ToTensor()(colour)
    assert out.shape == (2, 3, 5, 6)
    np.testing.assert_allclose(out, torch.from_numpy(colour).permute(0, 3, 1, 2).float().div(255).numpy(), rtol=1e-6)
    assert ToTensor(max_value=16)(np.full((1, 2, 2), 16, np.uint8)).max() == 1.0


def test_to_tensor_bad_input():
    with pytest.raises(TypeError, match=r"ToTensor: expected an integer image batch .* got float32 array"):
        ToTensor()(np.zeros((1, 2, 2), np.float32))
    with pytest.raises(
        ValueError, match=r"ToTensor: expected a batch \(N, H, W\) or \(N, H, W, C\), got shape \(2, 2\)"
    ):
        ToTensor()(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"ToTensor: `max_value` must be positive, got 0"):
        ToTensor(max_value=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_matches_torch(dtype):
    x = batch(c=3, dtype=dtype)
    mean, std = [0.1, -0.2, 0.3], [0.5, 2.0, 0.25]
    out = Normalize(mean, std)(x)
    t = torch.from_numpy(x)
    ref = (t - torch.tensor(mean, dtype=t.dtype).view(1, 3, 1, 1)) / torch.tensor(std, dtype=t.dtype).view(1, 3, 1, 1)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)
    np.testing.assert_allclose(Normalize(0.5, 2.0)(x), (x - 0.5) / 2.0, rtol=1e-6)  # one value for all channels


def test_normalize_bad_input():
    with pytest.raises(ValueError, match=r"Normalize: `mean`/`std` have 2 values but the batch has 3 channels"):
        Normalize([0, 0], [1, 1])(batch(c=3))
    with pytest.raises(ValueError, match=r"Normalize: `std` must be non-zero"):
        Normalize([0.0], [0.0])
    with pytest.raises(ValueError, match=r"Normalize: `mean` and `std` must be sequences of equal length"):
        Normalize([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match=r"Normalize: expected a float \(N, C, H, W\) batch \(apply ToTensor first\)"):
        Normalize([0.0], [1.0])(np.zeros((2, 28, 28), np.uint8))


@pytest.mark.parametrize(
    "padding, torch_pad",
    [(2, (2, 2, 2, 2)), ((1, 3), (1, 1, 3, 3)), ((1, 2, 3, 0), (1, 3, 2, 0))],  # torch: (left, right, top, bottom)
)
@pytest.mark.parametrize("mode, torch_mode", [("constant", "constant"), ("edge", "replicate"), ("reflect", "reflect")])
def test_pad_matches_torch(padding, torch_pad, mode, torch_mode):
    x = batch()
    out = Pad(padding, padding_mode=mode)(x)
    ref = F.pad(torch.from_numpy(x), torch_pad, mode=torch_mode)
    np.testing.assert_array_equal(out, ref.numpy())
    assert out.dtype == np.float32


def test_pad_fill_and_lenet_size():
    x = ToTensor()(np.full((2, 28, 28), 255, np.uint8))
    out = Pad(2, fill=-1.0)(x)
    assert out.shape == (2, 1, 32, 32) and out[0, 0, 0, 0] == -1.0 and out[0, 0, 2, 2] == 1.0


def test_pad_bad_input():
    with pytest.raises(ValueError, match=r"Pad: `padding` must be non-negative, got \(-1, -1, -1, -1\)"):
        Pad(-1)
    with pytest.raises(ValueError, match=r"Pad: `padding` must be an int or a tuple of 4 ints, got \(1, 2, 3\)"):
        Pad((1, 2, 3))
    with pytest.raises(ValueError, match=r"Pad: `padding_mode` must be one of .*got 'wrap'"):
        Pad(1, padding_mode="wrap")
    with pytest.raises(ValueError, match=r"Pad: reflect padding \(5, 5, 5, 5\) must be smaller than the image"):
        Pad(5, padding_mode="reflect")(batch(h=4, w=4))


def _find_offset(padded_img, crop):
    """All (top, left) where `crop` occurs in `padded_img` (C, H, W)."""
    th, tw = crop.shape[1:]
    hits = []
    for i in range(padded_img.shape[1] - th + 1):
        for j in range(padded_img.shape[2] - tw + 1):
            if np.array_equal(padded_img[:, i : i + th, j : j + tw], crop):
                hits.append((i, j))
    return hits


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 4),
    h=st.integers(3, 8),
    w=st.integers(3, 8),
    pad=st.integers(0, 3),
    data=st.data(),
)
def test_random_crop_takes_a_window_of_the_padded_image(n, h, w, pad, data):
    th = data.draw(st.integers(1, h + 2 * pad))
    tw = data.draw(st.integers(1, w + 2 * pad))
    x = batch(n=n, c=2, h=h, w=w)
    out = RandomCrop((th, tw), padding=pad, generator=cv.Generator(1))(x)
    assert out.shape == (n, 2, th, tw) and out.dtype == np.float32
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    for k in range(n):
        assert _find_offset(padded[k], out[k])


def test_random_crop_is_seeded_and_covers_every_offset():
    x = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8).repeat(400, axis=0)  # (400, 1, 8, 8)
    crop = RandomCrop(8, padding=2, generator=cv.Generator(7))
    a = crop(x)
    b = RandomCrop(8, padding=2, generator=cv.Generator(7))(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, crop(x))  # the generator moves on
    padded = np.pad(x[0], ((0, 0), (2, 2), (2, 2)))
    offsets = {_find_offset(padded, img)[0] for img in a}
    assert offsets == {(i, j) for i in range(5) for j in range(5)}  # 5 x 5 positions, all used


def test_random_crop_bad_input():
    with pytest.raises(ValueError, match=r"RandomCrop: crop size \(9, 9\) is larger than the \(padded\) image"):
        RandomCrop(9)(batch(h=8, w=8))
    with pytest.raises(ValueError, match=r"RandomCrop: `size` must be positive, got \(0, 3\)"):
        RandomCrop((0, 3))
    with pytest.raises(ValueError, match=r"RandomCrop: `size` must be an int or a tuple of 2 ints"):
        RandomCrop("big")


def test_random_horizontal_flip():
    x = batch(n=200)
    out = RandomHorizontalFlip(0.5, generator=cv.Generator(3))(x)
    flipped = np.array([np.array_equal(o, xi[..., ::-1]) for o, xi in zip(out, x)])
    kept = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert np.all(flipped | kept) and 60 < flipped.sum() < 140
    np.testing.assert_array_equal(out, RandomHorizontalFlip(0.5, generator=cv.Generator(3))(x))
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x), torch.from_numpy(x).flip(-1).numpy())
    with pytest.raises(ValueError, match=r"RandomHorizontalFlip: `p` must be in \[0, 1\], got 1.5"):
        RandomHorizontalFlip(1.5)


def test_compose_runs_in_order():
    images = rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    pipeline = Compose([ToTensor(), Pad(1), Normalize([0.5] * 3, [0.5] * 3)])
    out = pipeline(images)
    assert out.shape == (2, 3, 6, 6) and out[0, 0, 0, 0] == -1.0
    assert "ToTensor" in repr(pipeline) and "Pad" in repr(pipeline)
    with pytest.raises(TypeError, match=r"Compose: transforms\[1\] must be callable, got int"):
        Compose([ToTensor(), 3])
