"""`TensorBoard(log_dir)`: a `fit`/`Trainer` callback writing TensorBoard event files with tensorboardX.

Every epoch: each number of the epoch record (train/val loss and accuracy, lr, images/s) as `epoch/<name>`,
histograms of every parameter (`weights/<name>`) and of its last gradient (`gradients/<name>`), the first
convolution's filters as one image (`filters/<layer>`), and once the hyperparameters (the HParams tab).
Every `log_every_n_steps` batches: `step/loss`, `step/accuracy`, `step/lr`. View with `tensorboard --logdir DIR`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from convolve.nn.conv import Conv2d


def _writer(log_dir: str) -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ImportError("TensorBoard logging needs tensorboardX: pip install \"convolve[tensorboard]\"") from None
    return SummaryWriter(log_dir=log_dir)


def filter_grid(weight: np.ndarray, columns: int = 8) -> np.ndarray:
    """Filters (K, C, kh, kw) as one (rows*(kh+1)+1, cols*(kw+1)+1, 3) image in [0, 1], each filter scaled to
    its own range; C = 3 shows colour filters, otherwise the first input channel in grey."""
    k, c, kh, kw = weight.shape
    tiles = weight[:, :3] if c == 3 else np.repeat(weight[:, :1], 3, axis=1)  # (K, 3, kh, kw)
    low = tiles.min(axis=(1, 2, 3), keepdims=True)
    span = tiles.max(axis=(1, 2, 3), keepdims=True) - low
    tiles = (tiles - low) / np.where(span > 0, span, 1)
    columns = min(columns, k)
    rows = math.ceil(k / columns)
    grid = np.ones((rows * (kh + 1) + 1, columns * (kw + 1) + 1, 3), dtype=np.float32)  # white separators
    for i in range(k):
        r, col = divmod(i, columns)
        grid[1 + r * (kh + 1):1 + r * (kh + 1) + kh, 1 + col * (kw + 1):1 + col * (kw + 1) + kw] = \
            tiles[i].transpose(1, 2, 0)
    return grid


def _hparam(value: Any) -> Any:
    """TensorBoard's HParams take bool, str, int or float; anything else is shown as its str()."""
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


class TensorBoard:
    """Log a training run for TensorBoard (see the module docstring for what is written).

    `log_every_n_steps`: batch-level scalars every N optimizer steps (0: epochs only). `histograms`, `images`:
    turn those off for speed. `hparams`: extra hyperparameters (e.g. batch size, epochs) shown with the ones read
    from the trainer (optimizer, its lr/momentum/weight decay, scheduler, model class, parameter count, seed).
    """

    def __init__(self, log_dir: str | os.PathLike[str], log_every_n_steps: int = 50, histograms: bool = True,
                 images: bool = True, hparams: dict[str, Any] | None = None) -> None:
        if isinstance(log_every_n_steps, bool) or not isinstance(log_every_n_steps, int) or log_every_n_steps < 0:
            raise ValueError(f"TensorBoard: `log_every_n_steps` must be an int >= 0, got {log_every_n_steps!r}")
        self.log_dir = os.fspath(log_dir)
        self.writer = _writer(self.log_dir)
        self.log_every_n_steps = log_every_n_steps
        self.histograms, self.images = histograms, images
        self.extra_hparams = dict(hparams or {})
        self.step = 0  # optimizer steps seen (counted from the resumed epoch's start when the loader has a length)
        self._hparams_written = False

    # ----- called by the Trainer ----------------------------------------------------------------------------
    def on_batch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        """After every optimizer step: record holds epoch, batch (1-based), batches (or None), loss, accuracy, lr."""
        if record.get("batches"):
            self.step = (record["epoch"] - 1) * record["batches"] + record["batch"]
        else:
            self.step += 1
        if self.log_every_n_steps and self.step % self.log_every_n_steps == 0:
            for name in ("loss", "accuracy", "lr"):
                self.writer.add_scalar(f"step/{name}", float(record[name]), self.step)

    def __call__(self, trainer: Any, epoch: int, record: dict[str, Any]) -> None:
        """After every epoch (the Trainer's callback protocol)."""
        if not self._hparams_written:
            self._write_hparams(trainer, record)
        for name, value in record.items():
            if name != "epoch" and isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(f"epoch/{name}", float(value), epoch)
        if self.histograms:
            for name, param in trainer.model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", param.data.ravel(), epoch)
                if param.grad is not None:
                    self.writer.add_histogram(f"gradients/{name}", param.grad.data.ravel(), epoch)
        if self.images:
            first = next(((n, m) for n, m in trainer.model.named_modules() if isinstance(m, Conv2d)), None)
            if first is not None:
                self.writer.add_image(f"filters/{first[0]}", filter_grid(first[1].weight.data), epoch,
                                      dataformats="HWC")
        self.writer.flush()

    # ----- hyperparameters -----------------------------------------------------------------------------------
    def hyperparameters(self, trainer: Any) -> dict[str, Any]:
        """What the HParams tab shows: read from the trainer, then `hparams=` given to the callback."""
        group = trainer.optimizer.param_groups[0]
        found: dict[str, Any] = {"optimizer": type(trainer.optimizer).__name__,
                                 "model": type(trainer.model).__name__,
                                 "parameters": int(sum(p.data.size for p in trainer.model.parameters())),
                                 "scheduler": type(trainer.scheduler).__name__ if trainer.scheduler else "none"}
        for key in ("lr", "momentum", "weight_decay", "betas", "eps", "alpha", "nesterov"):
            if key in group:
                found[key] = group.get("initial_lr", group[key]) if key == "lr" else group[key]
        if trainer.seed is not None:
            found["seed"] = trainer.seed
        found.update(self.extra_hparams)
        return {k: _hparam(v) for k, v in found.items()}

    def _write_hparams(self, trainer: Any, record: dict[str, Any]) -> None:
        from tensorboardX.summary import hparams

        metrics = {f"epoch/{k}": float(v) for k, v in record.items()
                   if k.startswith(("train_", "val_")) and isinstance(v, int | float)}
        for summary in hparams(self.hyperparameters(trainer), metrics):
            self.writer.file_writer.add_summary(summary)
        self._hparams_written = True

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
