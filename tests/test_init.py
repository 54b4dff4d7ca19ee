"""convolve.nn.init: fans and gains exactly as PyTorch; distributions checked statistically on large tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
from convolve.nn import init

N = 400_000  # elements per statistical check: the sample std of a mean is ~std/630


def big(*shape: int, dtype=np.float64) -> cv.Tensor:
    return cv.tensor(np.zeros(shape, dtype=dtype))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=5))
def test_fans_equal_torch(shape: list[int]) -> None:
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init._calculate_fan_in_and_fan_out(big(*shape)) == expected


def test_fans_of_conv_and_linear_weights() -> None:
    conv = cv.nn.Conv2d(6, 8, (3, 5), groups=2)
    assert init._calculate_fan_in_and_fan_out(conv.weight) == (3 * 15, 8 * 15)  # in/groups * k, out * k
    assert init._calculate_fan_in_and_fan_out(cv.nn.Linear(7, 4).weight) == (7, 4)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(big(5))


@pytest.mark.parametrize(
    ("nonlinearity", "param"),
    [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
     ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None), ("conv_transpose2d", None)],
)
def test_gain_equals_torch(nonlinearity: str, param: float | None) -> None:
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param))


def test_gain_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="calculate_gain: unsupported `nonlinearity` 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match=r"`param` .* must be a number"):
        init.calculate_gain("leaky_relu", "x")


def _check_uniform(t: cv.Tensor, bound: float) -> None:
    v = t.numpy()
    assert np.abs(v).max() <= bound and np.abs(v).max() > 0.999 * bound
    assert abs(v.mean()) < 5 * bound / math.sqrt(3 * v.size)
    assert abs(v.std() - bound / math.sqrt(3)) < 0.01 * bound


def _check_normal(t: cv.Tensor, std: float, mean: float = 0.0) -> None:
    v = t.numpy()
    assert abs(v.mean() - mean) < 5 * std / math.sqrt(v.size)
    assert abs(v.std() - std) < 0.01 * std


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize(("nonlinearity", "a"), [("relu", 0.0), ("leaky_relu", math.sqrt(5)), ("tanh", 0.0)])
def test_kaiming(mode: str, nonlinearity: str, a: float) -> None:
    t = big(100, 40, 10, 10)
    fan = 4000 if mode == "fan_in" else 10_000
    gain = torch.nn.init.calculate_gain(nonlinearity, a)
    _check_uniform(init.kaiming_uniform_(t, a=a, mode=mode, nonlinearity=nonlinearity), gain * math.sqrt(3 / fan))
    _check_normal(init.kaiming_normal_(t, a=a, mode=mode, nonlinearity=nonlinearity), gain / math.sqrt(fan))


def test_xavier() -> None:
    t = big(200, 100, 5, 4)
    std = 1.5 * math.sqrt(2 / (100 * 20 + 200 * 20))
    _check_uniform(init.xavier_uniform_(t, gain=1.5), math.sqrt(3) * std)
    _check_normal(init.xavier_normal_(t, gain=1.5), std)


def test_uniform_normal_constant() -> None:
    t = big(N)
    v = init.uniform_(t, -2.0, 3.0).numpy()
    assert v.min() >= -2 and v.max() <= 3 and abs(v.mean() - 0.5) < 0.02
    _check_normal(init.normal_(t, mean=1.5, std=0.3), 0.3, mean=1.5)
    np.testing.assert_array_equal(init.constant_(t, 0.25).numpy(), 0.25)
    np.testing.assert_array_equal(init.zeros_(t).numpy(), 0.0)
    np.testing.assert_array_equal(init.ones_(t).numpy(), 1.0)
    with pytest.raises(ValueError, match="normal_: `std` must be non-negative"):
        init.normal_(t, std=-1.0)
    with pytest.raises(ValueError, match="uniform_: `a` must be <= `b`"):
        init.uniform_(t, 1.0, 0.0)


def test_trunc_normal_matches_the_truncated_distribution() -> None:
    v = init.trunc_normal_(big(N), mean=0.5, std=1.0, a=0.0, b=2.0).numpy()
    assert v.min() >= 0.0 and v.max() <= 2.0
    ref = torch.nn.init.trunc_normal_(torch.empty(N, dtype=torch.float64), mean=0.5, std=1.0, a=0.0, b=2.0)
    assert abs(v.mean() - ref.mean().item()) < 0.01 and abs(v.std() - ref.std().item()) < 0.01
    with pytest.raises(ValueError, match="trunc_normal_: need `std` > 0 and `a` < `b`"):
        init.trunc_normal_(big(3), a=1.0, b=0.0)
    with pytest.raises(ValueError, match="holds under 1e-4"):
        init.trunc_normal_(big(3), mean=0.0, std=1.0, a=10.0, b=11.0)


def test_generator_argument_makes_draws_reproducible_and_independent_of_global() -> None:
    t1, t2 = big(50), big(50)
    init.normal_(t1, generator=cv.Generator(5))
    cv.manual_seed(123)
    init.normal_(t2, generator=cv.Generator(5))
    np.testing.assert_array_equal(t1.numpy(), t2.numpy())
    cv.manual_seed(9)
    a = init.kaiming_uniform_(big(4, 3)).numpy().copy()
    cv.manual_seed(9)
    np.testing.assert_array_equal(init.kaiming_uniform_(big(4, 3)).numpy(), a)


def test_initializers_keep_dtype_identity_and_record_no_graph() -> None:
    p = cv.nn.Parameter(np.zeros((30, 20), np.float32))
    arr = p.data
    out = init.kaiming_normal_(p)
    assert out is p and p.data is arr and p.dtype == np.float32 and p.is_leaf and p.grad is None


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="kaiming_uniform_: `tensor` must be a convolve Tensor"):
        init.kaiming_uniform_(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="xavier_normal_: `tensor` must be floating-point"):
        init.xavier_normal_(cv.tensor(np.zeros((2, 2), np.int64)))
    with pytest.raises(ValueError, match="`mode` must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(big(2, 2), mode="fan_avg")
