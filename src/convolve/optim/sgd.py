"""`SGD`: stochastic gradient descent with optional (Nesterov) momentum, dampening and weight decay, as PyTorch's."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.optim.optimizer import Optimizer, ParamsT, check_range, decayed_grad
from convolve.tensor import Tensor


class SGD(Optimizer):
    """p -= lr * d, where d = g + wd*p, then with momentum buf = m*buf + (1-dampening)*d (buf = d at step 1)."""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        for key in ("lr", "momentum", "dampening", "weight_decay"):
            check_range(group[key], key, "SGD")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "SGD: `nesterov=True` requires `momentum` > 0 and `dampening` = 0, "
                f"got momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _update(self, group: dict[str, Any], param: Tensor, grad: np.ndarray, state: dict[str, Any]) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        a, b = self._work(param, 2)
        d = decayed_grad(grad, param, group["weight_decay"], group["maximize"], out=a, tmp=b)
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = Tensor(d.copy())
            else:
                buf.data *= momentum
                if dampening == 0:
                    buf.data += d
                else:
                    buf.data += np.multiply(d, 1 - dampening, out=b)
            if group["nesterov"]:
                np.multiply(buf.data, momentum, out=b)
                d = np.add(d, b, out=b)
            else:
                d = buf.data
        param.data += np.multiply(d, -lr, out=a)
