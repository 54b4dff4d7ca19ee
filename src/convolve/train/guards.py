"""Numerical guards of the training loop: a non-finite batch is stopped before the optimizer step (the weights keep
their last good values) with a message saying where the NaN/inf came from, and an exploding but finite loss is
reported once."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from convolve.backend import to_numpy

LOSS_GROWTH = 100.0  # warn when the loss exceeds this many times its first value (or 1, if larger)


class TrainingWarning(UserWarning):
    """Training goes on, but something is probably wrong (shown by the command line too)."""


def finite(value: Any) -> bool:
    """Whether an array/Tensor holds no NaN or inf (integer data always does)."""
    arr = to_numpy(value)
    return arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all())


def _where(fn: str, epoch: int | None, batch: int) -> str:
    return f"{fn}: at epoch {epoch}, batch {batch}" if epoch is not None else f"{fn}: at batch {batch}"


def nonfinite_loss_error(fn: str, epoch: int | None, batch: int, x: Any, out: Any, value: float,
                         params: Iterable[Any] = ()) -> FloatingPointError:
    """Why the loss is `value` (NaN/inf, or finite with a non-finite output): the input batch, the model's
    output, or the loss itself."""
    where = _where(fn, epoch, batch)
    what = f"the loss is {value}" if not math.isfinite(value) else "the model's output holds NaN or inf"
    if not finite(x):
        cause = "the input batch holds NaN or inf values: check the data (and its normalization)"
    elif not all(finite(p) for p in params):
        cause = "the weights hold NaN or inf: an earlier step broke them (try a lower learning rate)"
    elif not finite(out):
        cause = ("the model's output holds NaN or inf for finite inputs and weights: its activations overflowed "
                 "(try a lower learning rate)")
    else:
        cause = "the loss function returned it for finite outputs: check the targets and the loss's arguments"
    kept = ". The weights were not updated by this batch" if fn == "fit" else ""
    return FloatingPointError(f"{where} {what}; {cause}{kept}")


def check_gradients(params: Iterable[Any], epoch: int, batch: int, value: float) -> None:
    """Raise before the optimizer step when a gradient holds NaN/inf although the loss is finite."""
    for i, p in enumerate(params):
        grad = getattr(p, "grad", None)
        if grad is not None and not finite(grad):
            raise FloatingPointError(f"{_where('fit', epoch, batch)} the gradient of parameter {i} (shape "
                                     f"{tuple(p.shape)}) holds NaN or inf although the loss is finite ({value:.4g}); "
                                     f"the weights were not updated by this batch")


class LossGrowthWatch:
    """Warns once when the loss grows past LOSS_GROWTH times its first value (or 1, if larger) in this run."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.warned = False

    def update(self, value: float, epoch: int, batch: int) -> None:
        if not math.isfinite(value):
            return
        if self.start is None:
            self.start = value
            return
        limit = LOSS_GROWTH * max(abs(self.start), 1.0)
        if not self.warned and value > limit:
            self.warned = True
            warnings.warn(f"{_where('fit', epoch, batch)} the training loss is {value:.4g}, over {LOSS_GROWTH:g} "
                          f"times its first value {self.start:.4g}: training goes on, but the learning rate is "
                          f"probably too high", TrainingWarning, stacklevel=3)
