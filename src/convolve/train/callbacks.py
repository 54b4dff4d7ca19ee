"""Early stopping on a monitored metric (as Keras' `EarlyStopping`), with a state dict for exact resume."""

from __future__ import annotations

import math
from typing import Any


class EarlyStopping:
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    `mode` 'min' or 'max'; 'auto' picks 'min' for names containing 'loss' and 'max' otherwise.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, mode: str = "auto",
                 min_delta: float = 0.0) -> None:
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
            raise ValueError(f"EarlyStopping: `patience` must be a non-negative int, got {patience!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: `mode` must be 'auto', 'min' or 'max', got {mode!r}")
        if not min_delta >= 0 or min_delta == float("inf"):  # NaN fails the comparison
            raise ValueError(f"EarlyStopping: `min_delta` must be a finite number >= 0, got {min_delta}")
        self.monitor = monitor
        self.patience = patience
        self.mode = ("min" if "loss" in monitor else "max") if mode == "auto" else mode
        self.min_delta = float(min_delta)
        self.best: float | None = None
        self.best_epoch = -1
        self.wait = 0
        self.stopped_epoch: int | None = None

    def improved(self, value: float) -> bool:
        """Whether `value` beats the best so far by more than `min_delta`."""
        if self.best is None:
            return not math.isnan(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, record: dict[str, Any], epoch: int) -> bool:
        """Update with one epoch's record; True when training should stop."""
        if self.monitor not in record:
            raise KeyError(f"EarlyStopping: monitored metric {self.monitor!r} is not in the epoch record "
                           f"(available: {', '.join(sorted(record))}); pass a validation loader for 'val_*' metrics")
        value = float(record[self.monitor])
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])
        self.stopped_epoch = state["stopped_epoch"]
