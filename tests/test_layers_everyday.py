"""interpolate/Upsample, group_norm/GroupNorm, LayerNorm, GELU, SiLU, one_hot and orthogonal_ against PyTorch:
forward and every gradient in float64 (tight) and float32, modules with the same parameters and state_dict keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.nn as nn
import convolve.nn.functional as F
from convolve.nn.init import orthogonal_from
from tests.oracle import compare_with_torch

DTYPES = [np.float64, np.float32]

RESIZES = [
    ((2, 3, 5, 4), dict(scale_factor=2, mode="nearest")),
    ((1, 2, 7, 6), dict(size=(3, 4), mode="nearest")),
    ((1, 2, 5, 5), dict(size=(8, 3), mode="nearest-exact")),
    ((2, 2, 4, 5), dict(scale_factor=2, mode="bilinear", align_corners=False)),
    ((1, 3, 4, 5), dict(size=(7, 3), mode="bilinear", align_corners=True)),
    ((1, 2, 6, 5), dict(scale_factor=0.5, mode="bilinear")),
    ((1, 1, 5, 4), dict(scale_factor=(1.7, 2.3), mode="bilinear")),
    ((1, 1, 5, 4), dict(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True)),
    ((2, 3, 9), dict(size=4, mode="linear")),
    ((2, 3, 4), dict(scale_factor=3, mode="nearest")),
    ((1, 1, 1, 1), dict(size=(3, 2), mode="bilinear", align_corners=True)),
    ((1, 2, 5, 4), dict(scale_factor=2, mode="bicubic")),
    ((1, 2, 6, 7), dict(size=(4, 9), mode="bicubic", align_corners=True)),
    ((1, 1, 3, 3), dict(scale_factor=(2.5, 1.5), mode="bicubic", align_corners=False)),
    ((1, 2, 2, 3, 4), dict(scale_factor=2, mode="trilinear")),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "kwargs"), RESIZES, ids=[f"{s}-{k}" for s, k in RESIZES])
def test_interpolate_matches_torch(shape, kwargs, dtype):
    x = np.random.default_rng(0).standard_normal(shape)
    compare_with_torch(lambda t: F.interpolate(t, **kwargs), lambda t: TF.interpolate(t, **kwargs), [x], dtype)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), oh=st.integers(1, 12), ow=st.integers(1, 12),
       mode=st.sampled_from(["nearest", "nearest-exact", "bilinear-ac", "bilinear", "bicubic-ac", "bicubic"]))
def test_interpolate_random_sizes_match_torch(h, w, oh, ow, mode):
    kwargs = dict(size=(oh, ow), mode=mode.removesuffix("-ac"))
    if mode.startswith(("bilinear", "bicubic")):
        kwargs["align_corners"] = mode.endswith("-ac")
    x = np.random.default_rng(h * 10 + w).standard_normal((1, 2, h, w))
    compare_with_torch(lambda t: F.interpolate(t, **kwargs), lambda t: TF.interpolate(t, **kwargs), [x])


def test_interpolate_errors():
    x = cv.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"give exactly one of `size` and `scale_factor`"):
        F.interpolate(x)
    with pytest.raises(ValueError, match=r"`mode` must be one of .* got 'area' \(area is not implemented\)"):
        F.interpolate(x, scale_factor=2, mode="area")
    with pytest.raises(ValueError, match=r"mode 'linear' expects 3-D input"):
        F.interpolate(x, scale_factor=2, mode="linear")
    with pytest.raises(ValueError, match=r"`align_corners` option can only be set with the interpolating modes"):
        F.interpolate(x, scale_factor=2, align_corners=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "groups"), [((2, 6, 3, 4), 3), ((3, 4, 5), 2), ((2, 8), 4), ((1, 4, 2, 2), 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(shape, groups, affine, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape) * 3 + 1
    c = shape[1]
    if affine:
        arrays = [x, rng.standard_normal(c), rng.standard_normal(c)]
        compare_with_torch(lambda a, w, b: F.group_norm(a, groups, w, b, eps=1e-3),
                           lambda a, w, b: TF.group_norm(a, groups, w, b, eps=1e-3), arrays, dtype)
    else:
        compare_with_torch(lambda a: F.group_norm(a, groups), lambda a: TF.group_norm(a, groups), [x], dtype)


def test_group_norm_errors():
    with pytest.raises(ValueError, match=r"the 6 channels of `input` must be divisible by `num_groups` \(=4\)"):
        F.group_norm(cv.randn(2, 6, 3), 4)
    with pytest.raises(ValueError, match=r"`num_channels` \(=6\) must be divisible by `num_groups` \(=4\)"):
        nn.GroupNorm(4, 6)


MODULES = [
    ("GELU", lambda m: m.GELU(), (3, 5)),
    ("GELU-tanh", lambda m: m.GELU(approximate="tanh"), (3, 5)),
    ("SiLU", lambda m: m.SiLU(), (2, 3, 4)),
    ("LayerNorm", lambda m: m.LayerNorm(6), (4, 6)),
    ("LayerNorm-2d", lambda m: m.LayerNorm([3, 4], eps=1e-3), (2, 5, 3, 4)),
    ("LayerNorm-no-bias", lambda m: m.LayerNorm(4, bias=False), (3, 4)),
    ("GroupNorm", lambda m: m.GroupNorm(2, 4), (2, 4, 3, 3)),
    ("GroupNorm-no-affine", lambda m: m.GroupNorm(4, 4, affine=False), (2, 4, 5)),
    ("Softmax", lambda m: m.Softmax(dim=1), (2, 5)),
    ("LogSoftmax", lambda m: m.LogSoftmax(dim=-1), (2, 3, 5)),
    ("Upsample", lambda m: m.Upsample(scale_factor=2, mode="nearest"), (1, 2, 3, 3)),
    ("Upsample-bilinear", lambda m: m.Upsample(size=(5, 7), mode="bilinear", align_corners=False), (1, 2, 3, 3)),
    ("Softplus", lambda m: m.Softplus(beta=0.5), (2, 5)),
    ("Hardswish", lambda m: m.Hardswish(), (2, 5)),
    ("Mish", lambda m: m.Mish(), (2, 5)),
    ("PReLU", lambda m: m.PReLU(3), (2, 3, 4)),
]


@pytest.mark.parametrize(("name", "make", "shape"), MODULES, ids=[m[0] for m in MODULES])
def test_modules_match_torch(name, make, shape):
    ours, theirs = make(nn).double(), make(torch.nn).double()
    sd_t = theirs.state_dict()
    assert list(ours.state_dict()) == list(sd_t)
    rng = np.random.default_rng(2)
    for key, value in sd_t.items():  # random affine parameters so that they matter
        arr = rng.standard_normal(tuple(value.shape))
        value.copy_(torch.tensor(arr))
        ours.state_dict()[key].data[...] = arr
    x = rng.standard_normal(shape)
    compare_with_torch(lambda t: ours(t), lambda t: theirs(t), [x])
    for (n1, p1), (n2, p2) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert n1 == n2 and p1.grad is not None
        np.testing.assert_allclose(p1.grad.numpy(), p2.grad.numpy(), rtol=1e-7, atol=1e-9)
    assert repr(ours).split("(")[0] == repr(theirs).split("(")[0]


def test_one_hot_matches_torch():
    idx = np.array([[0, 3], [2, 1]])
    np.testing.assert_array_equal(F.one_hot(cv.tensor(idx)).numpy(), TF.one_hot(torch.tensor(idx)).numpy())
    ours = F.one_hot(cv.tensor(idx), num_classes=6)
    assert ours.dtype == np.int64 and ours.shape == (2, 2, 6)
    np.testing.assert_array_equal(ours.numpy(), TF.one_hot(torch.tensor(idx), 6).numpy())
    with pytest.raises(ValueError, match=r"smaller than num_classes \(=3\), found 3"):
        F.one_hot(cv.tensor(idx), 3)
    with pytest.raises(TypeError, match=r"int64 Tensor .*use \.long\(\)"):
        F.one_hot(cv.tensor([1.0]))


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 2, 3, 3), (4, 4)])
def test_orthogonal_is_torchs_construction_and_orthogonal(shape):
    w = cv.empty(*shape)
    nn.init.orthogonal_(w, gain=2.0, generator=cv.Generator(0))
    flat = w.numpy().reshape(shape[0], -1).astype(np.float64)
    gram = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
    np.testing.assert_allclose(gram, 4 * np.eye(len(gram)), atol=1e-5)
    gaussian = np.random.default_rng(3).standard_normal((shape[0], int(np.prod(shape[1:]))))
    wide = gaussian.shape[0] < gaussian.shape[1]
    q, r = torch.linalg.qr(torch.tensor(gaussian.T if wide else gaussian))  # torch.nn.init.orthogonal_'s steps
    q = q * torch.diag(r, 0).sign()
    np.testing.assert_allclose(orthogonal_from(gaussian), (q.T if wide else q).numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"only tensors with 2 or more dimensions are supported"):
        nn.init.orthogonal_(cv.empty(3))


FUNCTIONALS = [
    ("l1_loss", lambda F_, a, b: F_.l1_loss(a, b)),
    ("l1_loss-none", lambda F_, a, b: F_.l1_loss(a, b, reduction="none")),
    ("smooth_l1_loss", lambda F_, a, b: F_.smooth_l1_loss(a, b, beta=0.6)),
    ("smooth_l1_loss-sum", lambda F_, a, b: F_.smooth_l1_loss(a, b, reduction="sum")),
    ("huber_loss", lambda F_, a, b: F_.huber_loss(a, b, delta=0.8)),
    ("huber_loss-none", lambda F_, a, b: F_.huber_loss(a, b, reduction="none", delta=1.5)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "call"), FUNCTIONALS, ids=[f[0] for f in FUNCTIONALS])
def test_regression_losses_match_torch(name, call, dtype):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((4, 5)) * 2, rng.standard_normal((4, 5))
    compare_with_torch(lambda x, y: call(F, x, y), lambda x, y: call(TF, x, y), [a, b], dtype)


ACTIVATIONS = [
    ("softplus", lambda F_, x: F_.softplus(x)),
    ("softplus-beta", lambda F_, x: F_.softplus(x, beta=2.0, threshold=3.0)),
    ("hardswish", lambda F_, x: F_.hardswish(x)),
    ("mish", lambda F_, x: F_.mish(x)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "call"), ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_more_activations_match_torch(name, call, dtype):
    x = np.random.default_rng(6).standard_normal((3, 4, 5)) * 4
    compare_with_torch(lambda t: call(F, t), lambda t: call(TF, t), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,n", [((3, 4, 5), 4), ((3, 4), 1), ((2, 3, 4, 4), 3)])
def test_prelu_matches_torch(shape, n, dtype):
    rng = np.random.default_rng(7)
    compare_with_torch(F.prelu, TF.prelu, [rng.standard_normal(shape), rng.standard_normal(n)], dtype)
