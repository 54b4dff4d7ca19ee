"""Loss functions: cross_entropy (one fused log-softmax + NLL op), nll_loss, mse_loss, binary cross entropies.

Class scores are laid out as PyTorch's: `input` (N, C) or (N, C, d1, ...) or unbatched (C,), class-index
`target` (N,) / (N, d1, ...) / (). Internally the class axis is moved last so each sample is one row of C.

cross_entropy with class indices y, class weights w (1 if not given), smoothing eps and K classes uses the
per-sample target distribution (PyTorch's exact formula, ignored samples contribute nothing)

    q(k) = (1 - eps) * w[y] * delta(k, y) + eps / K * w[k],     loss = -sum_k q(k) log_softmax(x)(k)

and reduction='mean' divides the sum by sum_i w[y_i] over the non-ignored samples (PyTorch's weighted mean).
Its gradient is the classic softmax - target, scaled: dloss/dx = sum_k q(k) * softmax(x) - q.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve._validate import check_float, check_probability, check_tensor
from convolve.autograd import Context, Function
from convolve.nn.functional.activation import _log_softmax, _sigmoid
from convolve.tensor import Tensor

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "mse_loss", "nll_loss"]

_REDUCTIONS = ("mean", "sum", "none")


# ----- helpers: validation, layout, reduction ----------------------------------------------------------------
def _check_reduction(reduction: str, fn: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: `reduction` must be one of 'mean', 'sum', 'none', got {reduction!r}")


def _to_rows(x: np.ndarray) -> np.ndarray:
    """(N, C, d1, ...) -> (N*d1*..., C); (C,) -> (1, C): one row of class scores per sample."""
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim == 2:
        return x
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _from_rows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `_to_rows` for an array of the input's `shape`."""
    if len(shape) <= 2:
        return rows.reshape(shape)
    return np.moveaxis(rows.reshape(shape[0], *shape[2:], shape[1]), -1, 1)


def _sample_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The per-sample shape: the input's shape without the class dim (() for an unbatched (C,))."""
    return () if len(shape) == 1 else (shape[0], *shape[2:])


def _reduce(loss: np.ndarray, reduction: str, denom: Any) -> np.ndarray:
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return np.asarray(total)
    with np.errstate(invalid="ignore", divide="ignore"):  # all samples ignored: nan, as PyTorch
        return np.asarray(total / denom, dtype=loss.dtype)


def _upstream(grad: np.ndarray, reduction: str, denom: Any, m: int) -> np.ndarray:
    """d(reduced loss)/d(per-sample loss) times the incoming gradient, as an (M,) vector."""
    if reduction == "none":
        return grad.reshape(m)
    g = grad
    if reduction == "mean":  # every sample ignored (denom 0): no sample has a gradient path, as PyTorch
        g = grad / denom if denom != 0 else np.zeros_like(grad)
    return np.broadcast_to(np.asarray(g, dtype=grad.dtype), (m,))


def _check_input(input: Tensor, fn: str) -> int:
    check_float(input, "input", fn)
    if input.ndim == 0:
        raise ValueError(f"{fn}: `input` must be (N, C), (N, C, d1, ...) or (C,), got a 0-D tensor")
    return input.shape[0] if input.ndim == 1 else input.shape[1]


def _check_class_target(input: Tensor, target: Tensor, ignore_index: int, fn: str) -> np.ndarray:
    """Class indices: integer dtype, input's shape without the class dim, values in [0, C) or ignore_index."""
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"{fn}: `target` must hold integer class indices (or be a floating tensor of class probabilities with"
            f" the shape of `input`), got dtype {target.dtype}"
        )
    want = _sample_shape(input.shape)
    if tuple(target.shape) != want:
        raise ValueError(
            f"{fn}: `target` of class indices must have shape {want} (`input` shape {tuple(input.shape)} without"
            f" the class dim), got {tuple(target.shape)}"
        )
    c = input.shape[0] if input.ndim == 1 else input.shape[1]
    y = target.data.reshape(-1)
    bad = (y != ignore_index) & ((y < 0) | (y >= c))
    if bad.any():
        raise ValueError(f"{fn}: `target` values must be in [0, C) = [0, {c}), got {y[bad][0]}")
    return y


def _check_weight(weight: Tensor | None, c: int, input: Tensor, fn: str) -> np.ndarray | None:
    if weight is None:
        return None
    check_float(weight, "weight", fn)
    if weight.requires_grad:
        raise ValueError(f"{fn}: `weight` (class weights) is a constant here and must not require grad; "
                         "pass weight.detach()")
    if tuple(weight.shape) != (c,):
        raise ValueError(f"{fn}: `weight` must have shape ({c},) (one weight per class), got {tuple(weight.shape)}")
    return weight.data.astype(input.dtype, copy=False)


# ----- cross entropy with class indices: the fused hot path ----------------------------------------------
class CrossEntropyFunction(Function):
    """log_softmax + (smoothed, weighted) NLL in one op; backward = (sum(q) softmax - q) * upstream."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None, ignore_index: int,
                reduction: str, label_smoothing: float) -> np.ndarray:
        rows2 = _to_rows(x)
        shifted = rows2 - rows2.max(axis=1, keepdims=True)  # (M, C), max 0 per row: exp cannot overflow
        e = np.exp(shifted)
        sum_e = e.sum(axis=1)  # (M,) in [1, C]
        log_z = np.log(sum_e)  # log p(k) = shifted(k) - log_z, never formed as a full (M, C) array
        m, c = shifted.shape
        valid = y != ignore_index  # (M,)
        ys = np.where(valid, y, 0)
        wy = valid.astype(x.dtype) if weight is None else weight[ys] * valid  # (M,) weight of the true class
        eps = label_smoothing
        loss = (1 - eps) * wy * (log_z - shifted[np.arange(m), ys])  # (M,)
        if eps > 0:  # -sum_k w[k] log p(k) = sum_k w[k] log_z - sum_k w[k] shifted(k)
            w_sum, w_shifted = (c, shifted.sum(axis=1)) if weight is None else (weight.sum(), shifted @ weight)
            smooth = w_sum * log_z - w_shifted  # (M,)
            loss += (eps / c) * smooth * valid
        denom = wy.sum()
        e /= sum_e[:, None]  # softmax, kept for backward
        ctx.save_for_backward(e, ys, valid, wy, weight)
        ctx.args = (x.shape, reduction, eps, denom)
        return _reduce(loss.reshape(_sample_shape(x.shape)), reduction, denom)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        probs, ys, valid, wy, weight = ctx.saved
        shape, reduction, eps, denom = ctx.args
        m, c = probs.shape
        gi = _upstream(grad, reduction, denom, m)  # (M,)
        w_sum = c if weight is None else weight.sum()
        sum_q = ((1 - eps) * wy + (eps / c) * w_sum * valid).astype(probs.dtype, copy=False)  # (M,) mass of q
        gx = probs * (sum_q * gi)[:, None]  # (M, C): sum(q) softmax
        if eps > 0:
            w_row = 1 if weight is None else weight[None, :]
            gx -= (eps / c) * w_row * (gi * valid)[:, None]
        gx[np.arange(m), ys] -= (1 - eps) * wy * gi
        return (_from_rows(gx, shape),)


class CrossEntropyProbsFunction(Function):
    """Cross entropy against class probabilities (soft labels); differentiable in input and target."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, t: np.ndarray, weight: np.ndarray | None, reduction: str,
                label_smoothing: float) -> np.ndarray:
        logp = _log_softmax(_to_rows(x), axis=1)  # (M, C)
        m, c = logp.shape
        q = _to_rows(t) * (1 - label_smoothing) + label_smoothing / c  # (M, C)
        if weight is not None:
            q = q * weight
        loss = -(logp * q).sum(axis=1)  # (M,)
        ctx.save_for_backward(logp, q, weight)
        ctx.args = (x.shape, reduction, label_smoothing)
        return _reduce(loss.reshape(_sample_shape(x.shape)), reduction, m)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        logp, q, weight = ctx.saved
        shape, reduction, eps = ctx.args
        m = logp.shape[0]
        gi = _upstream(grad, reduction, m, m)[:, None]  # (M, 1)
        gx = gt = None
        if ctx.needs_input_grad[0]:
            gx = _from_rows((np.exp(logp) * q.sum(axis=1, keepdims=True) - q) * gi, shape)
        if ctx.needs_input_grad[1]:
            gl = -logp * gi * (1 - eps)
            gt = _from_rows(gl if weight is None else gl * weight, shape)
        return gx, gt


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross entropy of class scores `input` against class indices or class probabilities.

    Integer `target`: class indices (N,) / (N, d1, ...); samples equal to `ignore_index` are skipped; the
    weighted mean divides by the summed weights of the counted samples. Floating `target` of the input's shape:
    class probabilities (no ignore_index; the mean divides by the number of samples). `label_smoothing` eps
    mixes the target with the uniform distribution: q'(k) = (1 - eps) q(k) + eps / K, as PyTorch.
    """
    fn = "cross_entropy"
    c = _check_input(input, fn)
    check_tensor(target, "target", fn)
    _check_reduction(reduction, fn)
    check_probability(label_smoothing, "label_smoothing", fn)
    w = _check_weight(weight, c, input, fn)
    if target.dtype.kind == "f":
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(
                f"{fn}: `target` of class probabilities must have the shape of `input` {tuple(input.shape)},"
                f" got {tuple(target.shape)} (integer class indices would have shape {_sample_shape(input.shape)})"
            )
        if target.dtype != input.dtype:
            raise TypeError(f"{fn}: `target` dtype {target.dtype} must equal `input` dtype {input.dtype}")
        if ignore_index >= 0:
            raise ValueError(f"{fn}: `ignore_index` is not supported for class-probability targets")
        return CrossEntropyProbsFunction.apply(input, target, weight=w, reduction=reduction,
                                               label_smoothing=label_smoothing)
    y = _check_class_target(input, target, ignore_index, fn)
    return CrossEntropyFunction.apply(input, y=y, weight=w, ignore_index=ignore_index, reduction=reduction,
                                      label_smoothing=float(label_smoothing))


# ----- negative log likelihood ----------------------------------------------------------------------------------
class NLLLossFunction(Function):
    """-w[y] * input[y] per sample, for `input` holding log-probabilities."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None, ignore_index: int,
                reduction: str) -> np.ndarray:
        rows = _to_rows(x)  # (M, C)
        m = rows.shape[0]
        valid = y != ignore_index
        ys = np.where(valid, y, 0)
        wy = valid.astype(x.dtype) if weight is None else weight[ys] * valid  # (M,)
        loss = -wy * rows[np.arange(m), ys]
        denom = wy.sum()
        ctx.save_for_backward(ys, wy)
        ctx.args = (x.shape, rows.shape, reduction, denom)
        return _reduce(loss.reshape(_sample_shape(x.shape)), reduction, denom)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        ys, wy = ctx.saved
        shape, rows_shape, reduction, denom = ctx.args
        m = rows_shape[0]
        gx = np.zeros(rows_shape, dtype=grad.dtype)  # (M, C): only the true class gets a gradient
        gx[np.arange(m), ys] = -wy * _upstream(grad, reduction, denom, m)
        return (_from_rows(gx, shape),)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log likelihood of class indices `target` under log-probabilities `input` (e.g. log_softmax)."""
    fn = "nll_loss"
    c = _check_input(input, fn)
    check_tensor(target, "target", fn)
    _check_reduction(reduction, fn)
    w = _check_weight(weight, c, input, fn)
    y = _check_class_target(input, target, ignore_index, fn)
    return NLLLossFunction.apply(input, y=y, weight=w, ignore_index=ignore_index, reduction=reduction)


# ----- regression and binary losses ------------------------------------------------------------------------------
def _check_pair(input: Tensor, target: Tensor, fn: str) -> None:
    check_float(input, "input", fn)
    check_float(target, "target", fn)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{fn}: `target` shape {tuple(target.shape)} must equal `input` shape {tuple(input.shape)}")
    if target.dtype != input.dtype:
        raise TypeError(f"{fn}: `target` dtype {target.dtype} must equal `input` dtype {input.dtype}")


class MSELossFunction(Function):
    @staticmethod
    def forward(ctx: Context, x: np.ndarray, t: np.ndarray, reduction: str) -> np.ndarray:
        diff = x - t
        ctx.save_for_backward(diff)
        ctx.reduction = reduction
        return _reduce(diff * diff, reduction, diff.size)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        (diff,) = ctx.saved
        g = _upstream(grad, ctx.reduction, diff.size, diff.size).reshape(diff.shape)
        gx = 2 * diff * g
        return gx, -gx


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """(input - target)^2, reduced; shapes must match exactly (no silent broadcasting)."""
    _check_pair(input, target, "mse_loss")
    _check_reduction(reduction, "mse_loss")
    return MSELossFunction.apply(input, target, reduction=reduction)


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) without overflow."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class BCEWithLogitsFunction(Function):
    """w * [(1 - t) x + (1 + (pw - 1) t) softplus(-x)]: PyTorch's stable form of -w [pw t log s + (1-t) log(1-s)]."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, t: np.ndarray, weight: np.ndarray | None, pos_weight: np.ndarray | None,
                reduction: str) -> np.ndarray:
        lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * t  # weight of the log-sigmoid term
        sp = _softplus(-x)  # -log sigmoid(x)
        loss = (1 - t) * x + lw * sp
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(x, t, sp, weight, pos_weight)
        ctx.reduction = reduction
        return _reduce(loss, reduction, loss.size)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, t, sp, weight, pos_weight = ctx.saved
        g = _upstream(grad, ctx.reduction, x.size, x.size).reshape(x.shape)
        if weight is not None:
            g = g * weight
        lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
        gx = g * ((1 - t) - lw * _sigmoid(-x)) if ctx.needs_input_grad[0] else None
        gt = None
        if ctx.needs_input_grad[1]:
            gt = g * (-x + (0 if pos_weight is None else (pos_weight - 1) * sp))
        return gx, gt


def _check_broadcastable(t: Tensor | None, name: str, input: Tensor, fn: str) -> np.ndarray | None:
    """`t` must broadcast to the input's shape without enlarging it (PyTorch broadcasts these weights)."""
    if t is None:
        return None
    check_float(t, name, fn)
    try:
        ok = np.broadcast_shapes(tuple(t.shape), tuple(input.shape)) == tuple(input.shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{fn}: `{name}` shape {tuple(t.shape)} must broadcast to `input` shape {tuple(input.shape)}")
    return t.data.astype(input.dtype, copy=False)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross entropy in one numerically stable op; `pos_weight` scales the positive term."""
    fn = "binary_cross_entropy_with_logits"
    _check_pair(input, target, fn)
    _check_reduction(reduction, fn)
    w = _check_broadcastable(weight, "weight", input, fn)
    pw = _check_broadcastable(pos_weight, "pos_weight", input, fn)
    return BCEWithLogitsFunction.apply(input, target, weight=w, pos_weight=pw, reduction=reduction)


class BCEFunction(Function):
    """-w [t log x + (1 - t) log(1 - x)] with each log clamped at -100, as PyTorch."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, t: np.ndarray, weight: np.ndarray | None, reduction: str) -> np.ndarray:
        with np.errstate(divide="ignore"):
            log_x, log_1mx = np.maximum(np.log(x), -100), np.maximum(np.log1p(-x), -100)
        loss = -(t * log_x + (1 - t) * log_1mx)
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(x, t, weight)
        ctx.reduction = reduction
        return _reduce(loss, reduction, loss.size)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, t, weight = ctx.saved
        g = _upstream(grad, ctx.reduction, x.size, x.size).reshape(x.shape)
        if weight is not None:
            g = g * weight
        gx = g * (x - t) / np.maximum((1 - x) * x, x.dtype.type(1e-12)) if ctx.needs_input_grad[0] else None
        gt = None
        if ctx.needs_input_grad[1]:  # unclamped logs here, as PyTorch: +-inf at input 0 or 1
            with np.errstate(divide="ignore", invalid="ignore"):
                gt = g * (np.log1p(-x) - np.log(x))
        return gx, gt


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """Binary cross entropy of probabilities `input` in [0, 1]; prefer the `_with_logits` form for stability."""
    fn = "binary_cross_entropy"
    _check_pair(input, target, fn)
    _check_reduction(reduction, fn)
    x = input.data
    if ((x < 0) | (x > 1)).any():
        raise ValueError(f"{fn}: `input` values must be probabilities in [0, 1], got min {x.min()}, max {x.max()}")
    t = target.data
    if ((t < 0) | (t > 1)).any():  # as PyTorch: "all elements of target should be between 0 and 1"
        raise ValueError(f"{fn}: `target` values must be in [0, 1], got min {t.min()}, max {t.max()}")
    w = _check_broadcastable(weight, "weight", input, fn)
    return BCEFunction.apply(input, target, weight=w, reduction=reduction)
