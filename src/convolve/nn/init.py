"""Weight initializers with PyTorch's names, formulas and defaults, each drawing from an explicit `Generator`.

Fans (as `torch.nn.init._calculate_fan_in_and_fan_out`), for a weight of shape (size0, size1, *kernel):
    receptive_field = prod(kernel)          (1 for a Linear weight)
    fan_in  = size1 * receptive_field       Conv: in_channels / groups * kh * kw;  Linear: in_features
    fan_out = size0 * receptive_field       Conv: out_channels * kh * kw;         Linear: out_features
For a ConvTranspose weight (in_channels, out_channels / groups, *kernel) the same rule gives
fan_in = out_channels / groups * prod(kernel), which is what PyTorch uses too.

Every initializer fills the tensor in place, outside the graph, and returns it. Values are drawn in float64
from `generator` (default: the global one, seeded by `convolve.manual_seed`) and cast to the tensor's dtype.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convolve.autograd import no_grad
from convolve.random import Generator, rng
from convolve.tensor import Tensor

_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
_FAN_MODES = ("fan_in", "fan_out")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for `nonlinearity` (as PyTorch): relu sqrt(2), tanh 5/3, leaky_relu sqrt(2/(1+a^2))."""
    if nonlinearity in (*_LINEAR_LIKE, "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, int | float) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: `param` (negative slope) must be a number, got {param!r}")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    valid = ", ".join((*_LINEAR_LIKE, "sigmoid", "tanh", "relu", "leaky_relu", "selu"))
    raise ValueError(f"calculate_gain: unsupported `nonlinearity` {nonlinearity!r}; expected one of {valid}")


def _check(tensor: Any, fn: str) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{fn}: `tensor` must be a convolve Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind != "f":
        raise TypeError(f"{fn}: `tensor` must be floating-point, got dtype {tensor.dtype}")
    return tensor


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) = (size(1), size(0)) * prod(size(2:)); needs at least 2 dimensions."""
    if tensor.ndim < 2:
        raise ValueError(
            f"_calculate_fan_in_and_fan_out: fan in and fan out cannot be computed for a tensor with fewer "
            f"than 2 dimensions, got shape {tuple(tensor.shape)}"
        )
    receptive_field = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return int(tensor.shape[1]) * receptive_field, int(tensor.shape[0]) * receptive_field


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    if mode not in _FAN_MODES:
        raise ValueError(f"init: `mode` must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor: Tensor, values: Any) -> Tensor:
    with no_grad():
        tensor.data[...] = np.asarray(values).astype(tensor.data.dtype, copy=False)
    return tensor


def _uniform(gen: np.random.Generator, low: float, high: float, tensor: Tensor) -> np.ndarray:
    """U(low, high) drawn directly in the tensor's dtype (float32 draws: no float64 temporary to cast)."""
    dtype = tensor.data.dtype if tensor.data.dtype in (np.float32, np.float64) else np.float64
    values = gen.random(tensor.shape, dtype=dtype)
    values *= high - low
    values += low
    return values


def _normal(gen: np.random.Generator, mean: float, std: float, tensor: Tensor) -> np.ndarray:
    """N(mean, std^2) drawn directly in the tensor's dtype."""
    dtype = tensor.data.dtype if tensor.data.dtype in (np.float32, np.float64) else np.float64
    values = gen.standard_normal(tensor.shape, dtype=dtype)
    values *= std
    values += mean
    return values


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with U(a, b)."""
    _check(tensor, "uniform_")
    if not a <= b:
        raise ValueError(f"uniform_: `a` must be <= `b`, got a={a}, b={b}")
    return _fill(tensor, _uniform(rng(generator), a, b, tensor))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with N(mean, std^2)."""
    _check(tensor, "normal_")
    if std < 0:
        raise ValueError(f"normal_: `std` must be non-negative, got {std}")
    return _fill(tensor, _normal(rng(generator), mean, std, tensor))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator: Generator | None = None) -> Tensor:
    """Fill with N(mean, std^2) truncated to [a, b] (absolute bounds, as PyTorch), by vectorized rejection."""
    _check(tensor, "trunc_normal_")
    if std <= 0 or not a < b:
        raise ValueError(f"trunc_normal_: need `std` > 0 and `a` < `b`, got std={std}, a={a}, b={b}")
    cdf = [0.5 * (1 + math.erf((x - mean) / (std * math.sqrt(2)))) for x in (a, b)]
    if cdf[1] - cdf[0] < 1e-4:
        raise ValueError(f"trunc_normal_: [a, b] = [{a}, {b}] holds under 1e-4 of N({mean}, {std}^2); "
                         "move `mean` closer to the interval")
    gen = rng(generator)
    out = gen.normal(mean, std, tensor.shape)
    bad = (out < a) | (out > b)
    while bad.any():  # each round redraws only the rejected entries
        out[bad] = gen.normal(mean, std, int(bad.sum()))
        bad = (out < a) | (out > b)
    return _fill(tensor, out)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with `val`."""
    _check(tensor, "constant_")
    return _fill(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_check(tensor, "xavier_uniform_"))
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, _uniform(rng(generator), -bound, bound, tensor))


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_check(tensor, "xavier_normal_"))
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, _normal(rng(generator), 0.0, std, tensor))


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator: Generator | None = None) -> Tensor:
    """He uniform: U(-bound, bound), bound = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a)."""
    fan = _calculate_correct_fan(_check(tensor, "kaiming_uniform_"), mode)
    if fan == 0:
        return tensor  # an empty tensor: nothing to fill (PyTorch warns)
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return _fill(tensor, _uniform(rng(generator), -bound, bound, tensor))


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator: Generator | None = None) -> Tensor:
    """He normal: N(0, std^2), std = gain / sqrt(fan)."""
    fan = _calculate_correct_fan(_check(tensor, "kaiming_normal_"), mode)
    if fan == 0:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return _fill(tensor, _normal(rng(generator), 0.0, std, tensor))


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """A (semi-)orthogonal matrix (Saxe et al. 2013) times `gain`: the weight viewed as (size0, rest) has
    orthonormal rows (or columns, if taller than wide). Q of the QR of a Gaussian matrix, signs fixed by diag(R)."""
    _check(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, got shape "
                         f"{tuple(tensor.shape)}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    gaussian = rng(generator).standard_normal((rows, tensor.numel() // rows))
    return _fill(tensor, (orthogonal_from(gaussian) * gain).reshape(tensor.shape))


def orthogonal_from(gaussian: np.ndarray) -> np.ndarray:
    """PyTorch's construction on a given (rows, cols) Gaussian draw: QR of it (transposed if wide), Q's columns
    multiplied by the signs of diag(R) so the result is uniformly distributed."""
    wide = gaussian.shape[0] < gaussian.shape[1]
    q, r = np.linalg.qr(gaussian.T if wide else gaussian)
    q = q * np.sign(np.diag(r))
    return q.T if wide else q


__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "trunc_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]
