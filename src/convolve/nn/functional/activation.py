"""Activation functions (relu, leaky_relu, elu, sigmoid, tanh, gelu, silu, softmax, log_softmax).

Each is a `Function` with its derivative written out. Conventions follow PyTorch: the derivative of relu
at 0 is 0, softmax/log_softmax subtract the maximum first so logits of magnitude 1e4 stay finite.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convolve._validate import check_float
from convolve.autograd import Context, Function, is_grad_enabled
from convolve.engines.policy import policy
from convolve.tensor import Tensor

__all__ = [
    "elu",
    "gelu",
    "leaky_relu",
    "log_softmax",
    "relu",
    "relu6",
    "sigmoid",
    "silu",
    "softmax",
    "tanh",
]


# ----- piecewise family: the backward needs the output or a sign mask only, so `inplace=True` is safe ----
class ReLUFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, inplace: bool = False) -> np.ndarray:
        out = np.maximum(x, 0, out=x if inplace else None)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (out,) = ctx.saved
        return (grad * (out > 0),)  # d relu / dx = 0 at x = 0, as PyTorch


class ReLU6Function(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, inplace: bool = False) -> np.ndarray:
        out = np.clip(x, 0, 6, out=x if inplace else None)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (out,) = ctx.saved
        return (grad * ((out > 0) & (out < 6)),)  # 0 at both kinks, as PyTorch's hardtanh


class LeakyReLUFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, negative_slope: float = 0.01, inplace: bool = False) -> np.ndarray:
        slope = x.dtype.type(negative_slope)
        positive = x > 0  # kept before an in-place write; the slope's sign does not matter
        out = np.multiply(x, np.where(positive, x.dtype.type(1), slope), out=x if inplace else None)
        ctx.save_for_backward(positive)
        ctx.slope = slope
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (positive,) = ctx.saved
        return (np.where(positive, grad, grad * ctx.slope),)


class ELUFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, alpha: float = 1.0, inplace: bool = False) -> np.ndarray:
        a = x.dtype.type(alpha)
        positive = x > 0
        out = np.where(positive, x, a * np.expm1(np.minimum(x, 0)))  # alpha * (e^x - 1) on the negative side
        if inplace:
            x[...] = out
            out = x
        ctx.save_for_backward(out, positive)
        ctx.alpha = a
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        out, positive = ctx.saved  # for x <= 0: d/dx alpha (e^x - 1) = alpha e^x = out + alpha
        return (np.where(positive, grad, grad * (out + ctx.alpha)),)


def _apply_maybe_inplace(fn: type[Function], input: Tensor, name: str, inplace: bool, **kwargs: Any) -> Tensor:
    """Run `fn`; with `inplace=True` overwrite `input`'s array (refused on a leaf that requires grad)."""
    check_float(input, "input", name)
    if inplace and input.requires_grad and input.is_leaf and is_grad_enabled():
        raise RuntimeError(f"{name}: `inplace=True` on a leaf tensor that requires grad is not allowed")
    return policy.apply(fn, input, inplace=inplace, **kwargs)  # the active engine may take the call


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0) element-wise; the gradient at exactly 0 is 0 (PyTorch's choice)."""
    return _apply_maybe_inplace(ReLUFunction, input, "relu", inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6) element-wise (MobileNet's bounded relu)."""
    return _apply_maybe_inplace(ReLU6Function, input, "relu6", inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, negative_slope * x otherwise (PyTorch's default slope 0.01)."""
    return _apply_maybe_inplace(LeakyReLUFunction, input, "leaky_relu", inplace, negative_slope=negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return _apply_maybe_inplace(ELUFunction, input, "elu", inplace, alpha=alpha)


# ----- smooth activations -------------------------------------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow: e^-|x| is always <= 1."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class SigmoidFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        out = _sigmoid(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (s,) = ctx.saved
        return (grad * s * (1 - s),)


class TanhFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        out = np.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (t,) = ctx.saved
        return (grad * (1 - t * t),)


class SiLUFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        s = _sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, s = ctx.saved  # d/dx x s(x) = s + x s (1 - s)
        return (grad * s * (1 + x * (1 - s)),)


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    return SigmoidFunction.apply(check_float(input, "input", "sigmoid"))


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent; derivative 1 - tanh^2."""
    return policy.apply(TanhFunction, check_float(input, "input", "tanh"))


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (a.k.a. swish); `inplace` is accepted for PyTorch compatibility and ignored."""
    return SiLUFunction.apply(check_float(input, "input", "silu"))


# ----- erf and GELU --------------------------------------------------------------------------------------
# Rational approximations of erf / erfc from the Cephes math library (S. Moshier, `ndtr.c`), accurate to
# about 1e-16 relative in float64: erf(x) = x T(x^2) / U(x^2) for |x| <= 1; erfc(x) = e^{-x^2} P(x) / Q(x)
# for 1 < x < 8 and e^{-x^2} R(x) / S(x) beyond. Coefficients are in decreasing powers; U, Q, S are monic.
_ERF_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
          7.00332514112805075473e3, 5.55923013010394962768e4)
_ERF_U = (1.0, 3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
          2.26290000613890934246e4, 4.92673942608635921086e4)
_ERFC_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
           4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
           9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
_ERFC_Q = (1.0, 1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
           9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
           1.65666309194161350182e3, 5.57535340817727675546e2)
_ERFC_R = (5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
           6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0)
_ERFC_S = (1.0, 2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
           1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function on an array (vectorized Cephes approximation; SciPy is not a dependency)."""
    x = np.asarray(x)
    a = np.abs(x)
    z = np.minimum(a, 1) ** 2
    small = np.minimum(a, 1) * np.polyval(_ERF_T, z) / np.polyval(_ERF_U, z)  # valid for |x| <= 1
    t = np.clip(a, 1, 30)  # erfc(30) underflows to 0; the clip only guards the polynomials
    mid = np.polyval(_ERFC_P, t) / np.polyval(_ERFC_Q, t)
    far = np.polyval(_ERFC_R, t) / np.polyval(_ERFC_S, t)
    erfc = np.exp(-t * t) * np.where(t < 8, mid, far)
    out = np.where(a <= 1, small, 1 - erfc)
    return (np.sign(x) * out).astype(x.dtype, copy=False)


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_TANH_C = math.sqrt(2 / math.pi)


class GELUFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, approximate: str = "none") -> np.ndarray:
        ctx.approximate = approximate
        ctx.save_for_backward(x)
        if approximate == "tanh":
            t = np.tanh(_TANH_C * (x + 0.044715 * x**3))
            return 0.5 * x * (1 + t)
        return 0.5 * x * (1 + erf(x * _SQRT_HALF))  # x * Phi(x)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (x,) = ctx.saved
        if ctx.approximate == "tanh":
            t = np.tanh(_TANH_C * (x + 0.044715 * x**3))
            dt = (1 - t * t) * _TANH_C * (1 + 3 * 0.044715 * x * x)
            return (grad * (0.5 * (1 + t) + 0.5 * x * dt),)
        cdf = 0.5 * (1 + erf(x * _SQRT_HALF))
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
        return (grad * (cdf + x * pdf),)  # d/dx x Phi(x) = Phi(x) + x phi(x)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) with the exact erf (approximate='none') or the tanh approximation (approximate='tanh')."""
    check_float(input, "input", "gelu")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: `approximate` must be 'none' or 'tanh', got {approximate!r}")
    return GELUFunction.apply(input, approximate=approximate)


# ----- softmax family --------------------------------------------------------------------------------------
def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """x - logsumexp(x): the maximum is subtracted first, so no exp overflows (exact for |x| ~ 1e4)."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class SoftmaxFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dim: int) -> np.ndarray:
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        out = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (y,) = ctx.saved  # Jacobian diag(y) - y y^T applied to grad
        return (y * (grad - (grad * y).sum(axis=ctx.dim, keepdims=True)),)


class LogSoftmaxFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dim: int) -> np.ndarray:
        out = _log_softmax(x, dim)
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (logp,) = ctx.saved  # d/dx_j log p_i = delta_ij - p_j
        return (grad - np.exp(logp) * grad.sum(axis=ctx.dim, keepdims=True),)


def _check_dim(input: Tensor, dim: Any, fn: str) -> int:
    if dim is None or isinstance(dim, bool) or not isinstance(dim, int | np.integer):
        raise TypeError(f"{fn}: `dim` must be an int (which axis to normalize over), got {dim!r}")
    ndim = max(input.ndim, 1)
    if not -ndim <= dim < ndim:
        raise ValueError(f"{fn}: `dim` must be in [{-ndim}, {ndim - 1}] for a {input.ndim}-D input, got {dim}")
    return int(dim) % ndim


def softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """exp(x) / sum(exp(x)) along `dim` (required: PyTorch's implicit choice is deprecated)."""
    check_float(input, "input", "softmax")
    axis = _check_dim(input, dim, "softmax")
    if input.ndim == 0:
        return SoftmaxFunction.apply(input.reshape(1), dim=0).reshape(())
    return SoftmaxFunction.apply(input, dim=axis)


def log_softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """log(softmax(x)) along `dim`, computed as x - logsumexp(x): finite even for logits of 1e4."""
    check_float(input, "input", "log_softmax")
    axis = _check_dim(input, dim, "log_softmax")
    if input.ndim == 0:
        return LogSoftmaxFunction.apply(input.reshape(1), dim=0).reshape(())
    return LogSoftmaxFunction.apply(input, dim=axis)
