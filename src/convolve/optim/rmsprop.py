"""`RMSprop`: divide the gradient by a running RMS of its past values; centered and momentum variants as PyTorch's."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.optim.adam import lerp_
from convolve.optim.optimizer import Optimizer, ParamsT, check_range, decayed_grad
from convolve.tensor import Tensor


class RMSprop(Optimizer):
    """v = alpha*v + (1-alpha)*g^2; p -= lr * g / (sqrt(v - mean(g)^2 if centered) + eps), optionally via momentum."""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        for key in ("lr", "eps", "weight_decay", "momentum"):
            check_range(group[key], key, "RMSprop")
        check_range(group["alpha"], "alpha", "RMSprop")
        if group["alpha"] > 1:
            raise ValueError(f"RMSprop: `alpha` must be in [0, 1], got {group['alpha']}")

    def _update(self, group: dict[str, Any], param: Tensor, grad: np.ndarray, state: dict[str, Any]) -> None:
        lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
        if not state:
            state["step"] = 0.0
            state["square_avg"] = Tensor(np.zeros_like(param.data))
            if momentum > 0:
                state["momentum_buffer"] = Tensor(np.zeros_like(param.data))
            if group["centered"]:
                state["grad_avg"] = Tensor(np.zeros_like(param.data))
        a, c = self._work(param, 2)
        d = decayed_grad(grad, param, group["weight_decay"], group["maximize"], out=a, tmp=c)
        state["step"] += 1
        square_avg = state["square_avg"].data
        square_avg *= alpha
        np.multiply(d, 1 - alpha, out=c)
        c *= d
        square_avg += c  # alpha * v + (1 - alpha) * g^2
        if group["centered"]:
            grad_avg = state["grad_avg"].data
            lerp_(grad_avg, d, 1 - alpha, tmp=c)
            np.multiply(grad_avg, grad_avg, out=c)
            np.subtract(square_avg, c, out=c)
            np.sqrt(c, out=c)  # sqrt(v - mean(g)^2)
        else:
            np.sqrt(square_avg, out=c)
        c += eps
        np.divide(d, c, out=c)
        if momentum > 0:
            buf = state["momentum_buffer"].data
            buf *= momentum
            buf += c
            param.data += np.multiply(buf, -lr, out=c)
        else:
            c *= -lr
            param.data += c
