"""The scheduler base class `LRScheduler` and the argument checks every scheduler shares.

Kept apart from `lr_scheduler.py` (which exports every scheduler) so that schedulers in other files build on it
without importing the module that re-exports them.
"""

from __future__ import annotations

from typing import Any

from convolve.optim.optimizer import Optimizer


def _check_optimizer(optimizer: Any, fn: str) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{fn}: `optimizer` must be a convolve Optimizer, got {type(optimizer).__name__}")
    return optimizer


def _check_positive_int(value: Any, name: str, fn: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{fn}: `{name}` must be a positive int, got {value!r}")


def _per_group(value: Any, name: str, optimizer: Optimizer, fn: str) -> list[Any]:
    """A scalar repeated for every param group, or a list with exactly one value per group."""
    if isinstance(value, list | tuple):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(
                f"{fn}: `{name}` has {len(value)} values but the optimizer has {len(optimizer.param_groups)} groups"
            )
        return list(value)
    return [value] * len(optimizer.param_groups)


class LRScheduler:
    """Base class: `get_lr()` computes the next lrs from the current ones; `step()` advances `last_epoch`.

    `step_interval` says how a training loop calls `step()`: once per "epoch" (the default) or once per "batch".
    """

    step_interval: str = "epoch"

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        name = type(self).__name__
        self.optimizer = _check_optimizer(optimizer, name)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"{name}: param_groups[{i}] has no 'initial_lr' although `last_epoch` = {last_epoch} "
                        "(resume only after loading the optimizer state of a scheduled run)"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer (as PyTorch)."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the attributes saved by `state_dict()`."""
        self.__dict__.update(state_dict)

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last `step()`, one per param group."""
        return list(self._last_lr)

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch (or iteration) and write the new learning rates into the optimizer."""
        self._step_count += 1
        self._update_lr()

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:  # jump (used by SequentialLR at a milestone): closed form when the scheduler has one
            self.last_epoch = epoch
            values = self._get_closed_form_lr() if hasattr(self, "_get_closed_form_lr") else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]
