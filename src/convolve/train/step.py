"""The loss of one training step for models with auxiliary classifiers (GoogLeNet, Inception v2/v3).

In training mode such a model returns a tuple `(logits, aux_1, ...)` (a NamedTuple in the zoo; `None` for a head
it did not run); the step's loss is loss(logits) + aux_weight * sum(loss(aux_i)), as in the GoogLeNet paper
(weight 0.3) and the released Inception-v3 training (0.4). Metrics are computed on `logits` only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from convolve.tensor import Tensor


def split_outputs(output: Any) -> tuple[Tensor, tuple[Tensor, ...]]:
    """(main logits, auxiliary logits) of a model's output: a Tensor, or a tuple whose first entry is the logits."""
    if isinstance(output, Tensor):
        return output, ()
    if isinstance(output, tuple) and output and all(isinstance(o, Tensor | None) for o in output):
        if output[0] is None:
            raise TypeError("fit: the model's output tuple starts with None; expected the main logits first")
        return output[0], tuple(o for o in output[1:] if o is not None)
    raise TypeError(f"fit: the model must return a Tensor or a tuple of Tensors (logits, *aux_logits), "
                    f"got {type(output).__name__}")


def check_aux_weight(aux_weight: Any) -> float | None:
    """None, or a finite number >= 0 (the auxiliary loss weight)."""
    if aux_weight is None:
        return None
    if isinstance(aux_weight, bool) or not isinstance(aux_weight, int | float) or not (
            math.isfinite(aux_weight) and aux_weight >= 0):
        raise ValueError(f"Trainer: `aux_weight` must be a finite number >= 0 or None, got {aux_weight!r}")
    return float(aux_weight)


def step_loss(loss_fn: Callable[[Any, Any], Any], output: Any, target: Any, aux_weight: float | None,
              model: Any) -> tuple[Tensor, Tensor]:
    """(loss to back-propagate, main logits): the main loss plus the weighted losses of the auxiliary logits.

    `aux_weight=None` takes the model's `aux_loss_weight` attribute; a given weight with no auxiliary logits
    in the output is an error rather than silently unused.
    """
    logits, aux = split_outputs(output)
    loss = loss_fn(logits, target)
    if not aux:
        if aux_weight is not None:
            raise ValueError(f"fit: `aux_weight` (={aux_weight:g}) was given but {type(model).__name__} returned no "
                             f"auxiliary logits in training mode (build it with aux_logits=True, or drop the weight)")
        return loss, logits
    weight = aux_weight if aux_weight is not None else getattr(model, "aux_loss_weight", None)
    if weight is None:
        raise ValueError(f"fit: {type(model).__name__} returned {len(aux)} auxiliary logits in training mode; "
                         f"give their loss weight with `aux_weight` (GoogLeNet's paper: 0.3)")
    for a in aux:
        loss = loss + weight * loss_fn(a, target)
    return loss, logits
