"""`Adam` and `AdamW` (decoupled weight decay), with amsgrad and maximize, computed as PyTorch's single-tensor path."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.optim.optimizer import Optimizer, ParamsT, check_range, decayed_grad
from convolve.tensor import Tensor


def lerp_(start: np.ndarray, end: np.ndarray, weight: float, tmp: np.ndarray) -> None:
    """start += weight * (end - start) in place, with PyTorch's two-sided formula (exact at weight 0 and 1)."""
    np.subtract(end, start, out=tmp)
    if abs(weight) < 0.5:
        tmp *= weight
        start += tmp
    else:
        tmp *= 1 - weight
        np.subtract(end, tmp, out=start)


class Adam(Optimizer):
    """m = lerp(m, g, 1-b1); v = b2*v + (1-b2)*g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        for key in ("lr", "eps", "weight_decay"):
            check_range(group[key], key, name)
        betas = group["betas"]
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"{name}: `betas` must be a pair (beta1, beta2), got {betas!r}")
        check_range(betas[0], "betas[0]", name, 0.0, 1.0)
        check_range(betas[1], "betas[1]", name, 0.0, 1.0)
        group["betas"] = tuple(betas)

    def _update(self, group: dict[str, Any], param: Tensor, grad: np.ndarray, state: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0.0
            state["exp_avg"] = Tensor(np.zeros_like(param.data))
            state["exp_avg_sq"] = Tensor(np.zeros_like(param.data))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = Tensor(np.zeros_like(param.data))
        a, c = self._work(param, 2)
        state["step"] += 1
        decoupled = group["decoupled_weight_decay"]
        if decoupled and wd != 0:
            param.data *= 1 - lr * wd
        d = decayed_grad(grad, param, 0 if decoupled else wd, group["maximize"], out=a, tmp=c)
        m, v = state["exp_avg"].data, state["exp_avg_sq"].data
        lerp_(m, d, 1 - beta1, tmp=c)
        v *= beta2
        np.multiply(d, 1 - beta2, out=c)
        c *= d
        v += c  # b2 * v + (1 - b2) * g^2
        step = state["step"]
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        if group["amsgrad"]:
            v_max = state["max_exp_avg_sq"].data
            np.maximum(v_max, v, out=v_max)
            v = v_max
        np.sqrt(v, out=c)
        c /= bias_correction2**0.5
        c += eps
        np.divide(m, c, out=c)
        c *= -step_size
        param.data += c


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr*wd before the Adam step (Loshchilov & Hutter)."""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)
