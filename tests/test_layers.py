"""Layers vs torch.nn: same weights (loaded from torch's state_dict) give the same output, input gradient and
parameter gradients, in float64 and float32, train and eval mode; plus constructor validation and init."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
import convolve.nn as nn
from tests.layer_battery import SPEC_IDS, SPECS, Spec, build_pair, make_input, run_ours, run_theirs
from tests.oracle import assert_close

DTYPES = [np.float64, np.float32]
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")  # torch's


def _compare_step(spec: Spec, ours: nn.Module, theirs: torch.nn.Module, dtype: type, seed: int) -> None:
    """One forward/backward of both layers on the same input; compare output, every gradient and the state."""
    x, target = make_input(spec, dtype, seed)
    xa, ya = run_ours(ours, x, target)
    xb, yb = run_theirs(theirs, x, target)
    assert ya.dtype == np.dtype(dtype)
    assert_close(ya.numpy(), yb.detach().numpy(), dtype, f"{spec.id} forward")
    upstream = np.random.default_rng(seed + 1).standard_normal(yb.shape).astype(dtype)
    ya.backward(cv.tensor(upstream))
    yb.backward(torch.tensor(upstream))
    assert_close(xa.grad.numpy(), xb.grad.numpy(), dtype, f"{spec.id} input gradient")
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, f"{spec.id}: no gradient for {name}"
        assert_close(p.grad.numpy(), their_params[name].grad.numpy(), dtype, f"{spec.id} gradient of {name}")
    their_state = theirs.state_dict()
    for key, value in ours.state_dict().items():
        if value.dtype.kind == "f":
            assert_close(value.numpy(), their_state[key].numpy(), dtype, f"{spec.id} state {key}")
        else:
            np.testing.assert_array_equal(value.numpy(), their_state[key].numpy(), err_msg=f"{spec.id} state {key}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("spec", [s for s in SPECS if not s.random], ids=[s.id for s in SPECS if not s.random])
def test_layer_matches_torch(spec: Spec, training: bool, dtype: type) -> None:
    ours, theirs = build_pair(spec, dtype)
    ours.train(training)
    theirs.train(training)
    for step in range(3 if training else 1):  # batch norm: running statistics after a few steps
        ours.zero_grad()
        theirs.zero_grad()
        _compare_step(spec, ours, theirs, dtype, seed=step)


@pytest.mark.parametrize("name", ["BatchNorm1d", "BatchNorm2d", "BatchNorm1d-3d-cumulative"])
def test_batchnorm_eval_uses_running_stats_after_training(name: str) -> None:
    spec = SPECS[SPEC_IDS.index(name)]
    ours, theirs = build_pair(spec, np.float64)
    for step in range(4):
        _compare_step(spec, ours, theirs, np.float64, seed=10 + step)
    assert int(ours.num_batches_tracked.item()) == 4 and ours.num_batches_tracked.dtype == np.int64
    ours.eval()
    theirs.eval()
    _compare_step(spec, ours, theirs, np.float64, seed=99)


def test_dropout_eval_is_identity_and_train_scales_survivors() -> None:
    cv.manual_seed(0)
    layer = nn.Dropout(0.25)
    x = cv.tensor(np.ones((200, 100)))
    layer.eval()
    assert layer(x) is x or np.array_equal(layer(x).numpy(), x.numpy())
    layer.train()
    y = layer(x).numpy()
    assert set(np.unique(y)) <= {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.01  # 20,000 draws: std of the rate ~0.003


def test_dropout2d_zeroes_whole_channels() -> None:
    cv.manual_seed(1)
    layer = nn.Dropout2d(0.5)
    x = cv.tensor(np.ones((20, 30, 3, 3)), requires_grad=True)
    y = layer(x)
    per_channel = y.numpy().reshape(20, 30, 9)
    assert np.all(per_channel.min(axis=2) == per_channel.max(axis=2))  # a channel is all kept or all dropped
    assert set(np.unique(per_channel)) == {0.0, 2.0}
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # gradient = the mask (x is ones)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match="dropout2d: `input` must be 4-D or 3-D"):
        nn.Dropout2d()(cv.tensor(np.ones((2, 3))))


@pytest.mark.parametrize(
    ("layer", "text"),
    [(nn.ReLU(inplace=True), "ReLU(inplace=True)"), (nn.ReLU6(inplace=True), "ReLU6(inplace=True)"),
     (nn.LeakyReLU(0.1, inplace=True), "LeakyReLU(negative_slope=0.1, inplace=True)"),
     (nn.ELU(inplace=True), "ELU(alpha=1.0, inplace=True)"), (nn.Dropout(0.2, inplace=True), "inplace=True")],
)
def test_inplace_overwrites_the_input_as_pytorch(layer: nn.Module, text: str) -> None:
    assert text in repr(layer)
    x = cv.tensor(np.array([-3.0, 0.5, 7.0]))
    reference = {"ReLU": [0.0, 0.5, 7.0], "ReLU6": [0.0, 0.5, 6.0], "LeakyReLU": [-0.3, 0.5, 7.0]}
    cv.manual_seed(0)
    y = layer(x)
    np.testing.assert_array_equal(x.numpy(), y.numpy())  # the input's array now holds the result
    if type(layer).__name__ in reference:
        np.testing.assert_allclose(y.numpy(), reference[type(layer).__name__])


def test_dropout_is_reproducible_with_manual_seed() -> None:
    x = cv.tensor(np.ones((4, 5)))
    cv.manual_seed(3)
    a = nn.Dropout(0.5)(x).numpy()
    cv.manual_seed(3)
    b = nn.Dropout(0.5)(x).numpy()
    np.testing.assert_array_equal(a, b)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 3), cin=st.integers(1, 4), cout=st.integers(1, 4), k=st.integers(1, 4),
    stride=st.integers(1, 3), pad=st.integers(0, 2), dil=st.integers(1, 2), size=st.integers(5, 9),
    mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]), groups=st.sampled_from([1, 2]),
)
def test_conv2d_configurations_match_torch(n, cin, cout, k, stride, pad, dil, size, mode, groups) -> None:
    cin, cout = cin * groups, cout * groups
    if dil * (k - 1) + 1 > size - 1 + 2 * pad or (mode != "zeros" and pad >= size - 1):
        return  # the input is (size, size - 1): the kernel must fit the narrower side
    spec = Spec("hyp", lambda L: L.nn.Conv2d(cin, cout, k, stride, pad, dil, groups, padding_mode=mode),
                (n, cin, size, size - 1), ())
    ours, theirs = build_pair(spec, np.float64)
    _compare_step(spec, ours, theirs, np.float64, seed=0)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3), c=st.integers(1, 3), k=st.integers(1, 3), stride=st.integers(1, 3), pad=st.integers(0, 1),
    size=st.integers(3, 7), ceil=st.booleans(), kind=st.sampled_from(["MaxPool2d", "AvgPool2d", "MaxPool1d"]),
)
def test_pool_configurations_match_torch(n, c, k, stride, pad, size, ceil, kind) -> None:
    if 2 * pad > k:
        return
    shape = (n, c, size) if kind.endswith("1d") else (n, c, size, size + 1)
    spec = Spec("hyp", lambda L: getattr(L.nn, kind)(k, stride, pad, ceil_mode=ceil), shape, ())
    ours, theirs = build_pair(spec, np.float64)
    _compare_step(spec, ours, theirs, np.float64, seed=0)


@settings(max_examples=20, deadline=None)
@given(batch=st.lists(st.integers(1, 3), max_size=2), fin=st.integers(1, 6), fout=st.integers(1, 6),
       bias=st.booleans(), dtype=st.sampled_from(DTYPES))
def test_linear_configurations_match_torch(batch, fin, fout, bias, dtype) -> None:
    spec = Spec("hyp", lambda L: L.nn.Linear(fin, fout, bias=bias), (*batch, fin), ())
    ours, theirs = build_pair(spec, dtype)
    _compare_step(spec, ours, theirs, dtype, seed=0)


def test_conv_transpose_output_size_argument() -> None:
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    ours = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    expected = theirs(torch.tensor(x), output_size=[8, 8]).detach().numpy()
    assert_close(ours(cv.tensor(x), output_size=(8, 8)).numpy(), expected, np.float64, "output_size")
    with pytest.raises(ValueError, match="ConvTranspose2d: requested `output_size`"):
        ours(cv.tensor(x), output_size=(10, 10))


def test_softmax_without_dim_warns_and_uses_pytorch_implicit_dim() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = nn.Softmax()(cv.tensor(x))
    np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: nn.Conv2d(3, 4, 3, groups=2), r"Conv2d: `in_channels` \(=3\) must be divisible by `groups` \(=2\)"),
        (lambda: nn.Conv2d(4, 3, 3, groups=2), r"`out_channels` \(=3\) must be divisible by `groups` \(=2\)"),
        (lambda: nn.Conv2d(3, 4, 3, padding_mode="mirror"), r"`padding_mode` must be one of .*'reflect'.*'mirror'"),
        (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), "padding='same' is not supported for strided"),
        (lambda: nn.Conv2d(3, 4, 3, padding="full"), "Conv2d: `padding` must be 'same', 'valid', an int or"),
        (lambda: nn.Conv2d(0, 4, 3), "Conv2d: `in_channels` must be a positive integer, got 0"),
        (lambda: nn.Conv1d(3, 4, 0), "Conv1d: `kernel_size` must be positive"),
        (lambda: nn.Conv2d(3, 4, (3, 3, 3)), "Conv2d: `kernel_size` must be an int or a tuple of 2 ints"),
        (lambda: nn.Conv2d(3, 4, 3, padding=-1), "Conv2d: `padding` must be non-negative"),
        (lambda: nn.Conv2d(3, 4, 3, stride=0), "Conv2d: `stride` must be positive"),
        (lambda: nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect"), "only padding_mode='zeros'"),
        (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=2), "`output_padding` .* must be smaller"),
        (lambda: nn.Linear(0, 3), "Linear: `in_features` must be a positive integer, got 0"),
        (lambda: nn.Linear(3, -1), "Linear: `out_features` must be a positive integer, got -1"),
        (lambda: nn.MaxPool2d(2, padding=2), "MaxPool2d: `padding` must be at most half of `kernel_size`"),
        (lambda: nn.MaxPool2d(0), "MaxPool2d: `kernel_size` must be positive"),
        (lambda: nn.AvgPool2d(2, divisor_override=0), "AvgPool2d: `divisor_override` must be None or a non-zero int"),
        (lambda: nn.AdaptiveAvgPool2d(0), "AdaptiveAvgPool2d: `output_size` must be a positive int"),
        (lambda: nn.AdaptiveMaxPool2d((1, 2, 3)), "AdaptiveMaxPool2d: `output_size`"),
        (lambda: nn.Dropout(1.5), r"Dropout: `p` must be in \[0, 1\], got 1.5"),
        (lambda: nn.BatchNorm2d(0), "BatchNorm2d: `num_features` must be a positive integer"),
        (lambda: nn.BatchNorm2d(3, momentum=2.0), "BatchNorm2d: `momentum` must be in"),
        (lambda: nn.BatchNorm1d(3, eps=0), "BatchNorm1d: `eps` must be positive"),
        (lambda: nn.LocalResponseNorm(0), "LocalResponseNorm: `size` must be a positive integer"),
        (lambda: nn.CrossEntropyLoss(reduction="avg"), r"CrossEntropyLoss: `reduction` must be one of"),
        (lambda: nn.CrossEntropyLoss(label_smoothing=1.5), "`label_smoothing` must be in"),
        (lambda: nn.NLLLoss(weight=np.ones(3)), "NLLLoss: `weight` must be a convolve Tensor"),
        (lambda: nn.Flatten(1.5), "Flatten: `start_dim` must be an int"),
    ],
)
def test_constructor_validation(build, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_batchnorm_input_checks() -> None:
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4-D input \(N, C, H, W\), got 3-D"):
        nn.BatchNorm2d(3)(cv.tensor(np.ones((2, 3, 4))))
    with pytest.raises(ValueError, match=r"BatchNorm1d: `input` has 4 channels .* num_features=3"):
        nn.BatchNorm1d(3)(cv.tensor(np.ones((2, 4))))


@pytest.mark.parametrize("build", [lambda: nn.Conv2d(6, 8, (3, 5), groups=2), lambda: nn.Linear(50, 40),
                                   lambda: nn.Conv1d(4, 5, 7), lambda: nn.ConvTranspose2d(4, 6, 3, groups=2)])
def test_default_init_is_pytorchs_uniform(build) -> None:
    """Weight kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)) (gain sqrt(1/3) * sqrt(3/fan_in)); bias the same."""
    cv.manual_seed(0)
    layer = build()
    w = layer.weight.numpy()
    fan_in = w.shape[1] * int(np.prod(w.shape[2:]))
    bound = 1 / math.sqrt(fan_in)
    for values in (w, layer.bias.numpy()):
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound
    assert np.abs(w).max() > 0.9 * bound  # the bound is reached, not a smaller one
    assert abs(w.std() - bound / math.sqrt(3)) < 0.15 * bound / math.sqrt(3)


def test_parameters_follow_the_default_dtype() -> None:
    cv.set_default_dtype(np.float64)
    try:
        layers = [nn.Conv2d(2, 3, 3), nn.Linear(3, 2), nn.BatchNorm2d(3)]
    finally:
        cv.set_default_dtype(np.float32)
    assert all(p.dtype == np.float64 for m in layers for p in m.parameters())
    assert nn.Linear(3, 2).weight.dtype == np.float32
    assert nn.Linear(3, 2, dtype=np.float64).weight.dtype == np.float64


def test_seeded_init_is_reproducible() -> None:
    cv.manual_seed(7)
    a = nn.Conv2d(3, 4, 3).weight.numpy().copy()
    cv.manual_seed(7)
    b = nn.Conv2d(3, 4, 3).weight.numpy()
    np.testing.assert_array_equal(a, b)
