"""`Trainer` / `fit`: the training loop with validation, checkpoints every epoch, exact resume and early stopping.

A run is a pure function of (seed, model init, data): the global generator and the train loader's generator are
saved in every checkpoint with the model, optimizer and scheduler, so a run killed after epoch k and resumed from
its checkpoint ends with the same weights, bit for bit, as an uninterrupted run.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve import random as crandom
from convolve._atomic import copy_file, ensure_writable_dir, remove_stale_temps
from convolve.autograd import no_grad
from convolve.backend import to_numpy
from convolve.nn.utils import clip_grad_norm_
from convolve.optim.lr_scheduler import ReduceLROnPlateau
from convolve.tensor import Tensor
from convolve.train.callbacks import EarlyStopping
from convolve.train.checkpoint import save_checkpoint
from convolve.train.guards import LossGrowthWatch, TrainingWarning, check_gradients, finite, nonfinite_loss_error
from convolve.train.history import History
from convolve.train.metrics import EvalResult, MetricAccumulator, topk_correct
from convolve.train.progress import EpochProgress, progress_enabled
from convolve.train.ranks import is_main_process, load_checkpoint_once, reduce_eval_result, sum_over_ranks, unwrap
from convolve.train.step import check_aux_weight, step_loss

Callback = Callable[["Trainer", int, dict[str, Any]], None]
LAST, BEST = "last.npz", "best.npz"


def _num_batches(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def _default_loss(output: Tensor, target: Tensor) -> Tensor:
    from convolve.nn import functional as F

    return F.cross_entropy(output, target)


def evaluate(model: Any, loader: Iterable[Any], loss_fn: Callable[[Any, Any], Any] | None = None,
             num_classes: int | None = None, progress: bool | None = False) -> EvalResult:
    """Loss, accuracy, top-5, per-class accuracy and confusion matrix of `model` on `loader` (eval mode, no grad)."""
    loss_fn = loss_fn or _default_loss
    was_training = getattr(model, "training", False)
    model.eval()
    acc = MetricAccumulator(num_classes=num_classes)
    bar = EpochProgress(_num_batches(loader), "evaluate", progress_enabled(progress))
    try:
        with no_grad():
            for i, (x, y) in enumerate(loader):
                out = model(x)
                loss = float(to_numpy(loss_fn(out, y)))
                if not math.isfinite(loss) or not finite(out):
                    raise nonfinite_loss_error("evaluate", None, i + 1, x, out, loss)
                acc.update(out, y, loss)
                n = len(to_numpy(y))
                bar.update(loss, topk_correct(out, y, 1), n)
    finally:
        bar.close()
        model.train(was_training)
    return acc.result()


class Trainer:
    """Owns a model, loss, optimizer and optional scheduler; `fit` runs epochs and records a `History`.

    `scheduler_interval`: 'epoch' (StepLR, cosine...), 'batch' (OneCycleLR; 'step' is accepted as its old name) or
    'auto': the scheduler's own `step_interval`.
    `callbacks`: functions `cb(trainer, epoch, record)` called after each epoch's checkpoint is written.
    `seed`: before the first epoch, reseed the global generator (dropout) with `seed` and the loader's generators
    with `seed + 1, seed + 2, ...`; the initial weights come from the seed in force when the model was built.
    `aux_weight`: the loss weight of auxiliary logits (models returning `(logits, *aux)` in training, e.g.
    GoogLeNet, Inception); None takes the model's `aux_loss_weight`. `clip_grad_norm`: clip the gradients' total
    2-norm to this value before each step (`nn.utils.clip_grad_norm_`); None: no clipping.
    `progress`: None shows the tqdm bar only on a terminal. Checkpoints: `checkpoint_dir/last.npz` after every
    epoch, `best.npz` when the monitored metric (early stopping's, else val_accuracy, else train_loss) improves,
    and `history.csv` / `history.json`.
    Data-parallel (a `DistributedDataParallel` model, one Trainer per rank): each rank's `train_loader` yields its
    slice of every global batch (a `DistributedSampler`, whose epoch `fit` sets), the `val_loader` its shard of the
    validation set; metrics are summed over the ranks, and rank 0 alone shows progress, writes checkpoints (of the
    wrapped module) and history and calls the callbacks.
    """

    def __init__(self, model: Any, loss_fn: Callable[[Any, Any], Any] | None, optimizer: Any, scheduler: Any = None,
                 *, metrics: Sequence[str] = ("loss", "accuracy", "top5"), checkpoint_dir: str | Path | None = None,
                 early_stopping: EarlyStopping | None = None, seed: int | None = None, progress: bool | None = None,
                 callbacks: Sequence[Callback] = (), scheduler_interval: str = "auto",
                 meta: dict[str, Any] | None = None, aux_weight: float | None = None,
                 clip_grad_norm: float | None = None) -> None:
        if scheduler_interval not in ("auto", "epoch", "batch", "step"):
            raise ValueError(f"Trainer: `scheduler_interval` must be 'auto', 'epoch' or 'batch', "
                             f"got {scheduler_interval!r}")
        unknown = set(metrics) - {"loss", "accuracy", "top5"}
        if unknown:
            raise ValueError(f"Trainer: unknown `metrics` {sorted(unknown)}; choose from 'loss', 'accuracy', 'top5'")
        self.model, self.loss_fn, self.optimizer, self.scheduler = model, loss_fn or _default_loss, optimizer, scheduler
        self.metrics = tuple(metrics)
        self.aux_weight = check_aux_weight(aux_weight)
        if clip_grad_norm is not None and (isinstance(clip_grad_norm, bool) or not isinstance(
                clip_grad_norm, int | float) or not clip_grad_norm > 0):
            raise ValueError(f"Trainer: `clip_grad_norm` must be a number > 0 or None, got {clip_grad_norm!r}")
        self.clip_grad_norm = clip_grad_norm
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.early_stopping, self.seed, self.progress = early_stopping, seed, progress
        self.callbacks = list(callbacks)
        if scheduler_interval == "auto":
            scheduler_interval = getattr(scheduler, "step_interval", "epoch")
        self.scheduler_interval = "batch" if scheduler_interval == "step" else scheduler_interval
        self.meta = dict(meta or {})
        self.history = History()
        self.epoch = 0  # epochs completed
        self.best: float | None = None
        self.best_epoch: int | None = None  # the epoch whose weights best.npz holds
        self.stop_training = False
        self._loss_watch = LossGrowthWatch()

    # ----- state -------------------------------------------------------------------------------------
    @staticmethod
    def loader_generators(loader: Any) -> list[crandom.Generator]:
        """The explicit generators a loader draws from: its shuffling `generator`, then those of its transforms
        (the loader's, else the dataset's). Transforms drawing from the global generator run on the prefetch
        thread, concurrently with dropout: give them their own `Generator` for reproducible runs."""
        found: list[crandom.Generator] = []
        transform = getattr(loader, "transform", None) or getattr(getattr(loader, "dataset", None), "transform", None)
        stack = [loader, transform]
        while stack:
            obj = stack.pop(0)
            gen = getattr(obj, "generator", None)
            if isinstance(gen, crandom.Generator) and all(gen is not g for g in found):
                found.append(gen)
            stack.extend(getattr(obj, "transforms", None) or [])
        return found

    def state_dict(self, train_loader: Any = None) -> dict[str, Any]:
        """Everything but the model weights needed to continue the run exactly."""
        gens = self.loader_generators(train_loader)
        return {
            "epoch": self.epoch, "best": self.best, "best_epoch": self.best_epoch, "meta": self.meta,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "early_stopping": self.early_stopping.state_dict() if self.early_stopping is not None else None,
            "history": self.history.records,
            "rng": {"global": crandom.default_generator.get_state(), "loader": [g.get_state() for g in gens]},
        }

    def load_state_dict(self, state: dict[str, Any], train_loader: Any = None) -> None:
        """Restore a `state_dict()` (the model weights are loaded separately)."""
        self.epoch, self.best, self.best_epoch = int(state["epoch"]), state["best"], state.get("best_epoch")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.early_stopping is not None and state.get("early_stopping") is not None:
            self.early_stopping.load_state_dict(state["early_stopping"])
        self.history = History(state["history"])
        crandom.default_generator.set_state(state["rng"]["global"])
        gens, saved = self.loader_generators(train_loader), state["rng"]["loader"]
        if len(gens) != len(saved):
            raise ValueError(f"fit: the checkpoint holds {len(saved)} data-loader generator states but "
                             f"`train_loader` has {len(gens)} generators; resume with the same pipeline")
        for gen, g_state in zip(gens, saved):
            gen.set_state(g_state)

    def save_checkpoint(self, path: str | Path, train_loader: Any = None) -> Path:
        """Write model + trainer state to `path` (.npz)."""
        return save_checkpoint(path, unwrap(self.model).state_dict(), self.state_dict(train_loader))

    def restore(self, path: str | Path, train_loader: Any = None) -> None:
        """Load a checkpoint written by `save_checkpoint` into the model, optimizer, scheduler and RNGs: all or
        nothing (a checkpoint that does not fit, e.g. of another optimizer, leaves everything as it was). Under
        several ranks, rank 0 reads the file and sends it to every rank."""
        model_state, state = load_checkpoint_once(path)
        model = unwrap(self.model)
        saved_model = {k: np.array(v.data, copy=True) for k, v in model.state_dict().items()}
        saved_trainer = copy.deepcopy(self.state_dict(train_loader))
        try:
            self.load_state_dict(state, train_loader)
            model.load_state_dict({k: Tensor(v) for k, v in model_state.items()})
        except Exception as e:
            model.load_state_dict({k: Tensor(v) for k, v in saved_model.items()})
            self.load_state_dict(saved_trainer, train_loader)
            raise ValueError(f"cannot restore {path}: {e} (the model, optimizer and random states are "
                             f"unchanged)") from e

    # ----- loop --------------------------------------------------------------------------------------
    def _step_scheduler(self, record: dict[str, Any]) -> None:
        if self.scheduler is None or self.scheduler_interval != "epoch":
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):  # steps on the monitored loss
            self.scheduler.step(record.get("val_loss", record["train_loss"]))
        else:
            self.scheduler.step()

    def train_epoch(self, loader: Iterable[Any], epoch: int, epochs: int) -> dict[str, float]:
        """One pass over `loader`; returns train loss, accuracy and images/s."""
        self.model.train()
        set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch - 1)  # a DistributedSampler's permutation of this epoch
        bar = EpochProgress(_num_batches(loader), f"epoch {epoch}/{epochs}",
                            progress_enabled(self.progress) and is_main_process())
        try:
            for i, (x, y) in enumerate(loader):
                out, value = self._train_step(x, y, epoch, i + 1)
                bar.update(value, topk_correct(out, y, 1), len(to_numpy(y)))
        finally:
            bar.close()
        if bar.count == 0:
            raise ValueError("fit: `train_loader` yielded no batches")
        loss_sum, correct, count = sum_over_ranks([bar.loss_sum, bar.correct, bar.count])  # all ranks' images
        return {"train_loss": loss_sum / count, "train_accuracy": correct / count,
                "images_per_second": count / max(bar.elapsed, 1e-9)}

    def _train_step(self, x: Any, y: Any, epoch: int, batch: int) -> tuple[Any, float]:
        """Forward, backward and (only when the loss and every gradient are finite) the optimizer step."""
        self.optimizer.zero_grad()
        loss, out = step_loss(self.loss_fn, self.model(x), y, self.aux_weight, unwrap(self.model))
        value = float(to_numpy(loss))
        if not math.isfinite(value):
            raise nonfinite_loss_error("fit", epoch, batch, x, out, value, self.model.parameters())
        loss.backward()
        check_gradients((p for g in self.optimizer.param_groups for p in g["params"]), epoch, batch, value)
        if self.clip_grad_norm is not None:
            clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self.optimizer.step()
        if self.scheduler is not None and self.scheduler_interval == "batch":
            self.scheduler.step()
        self._loss_watch.update(value, epoch, batch)
        return out, value

    def _monitor_value(self, record: dict[str, Any]) -> tuple[str, float]:
        if self.early_stopping is not None:
            name = self.early_stopping.monitor
        else:
            name = "val_accuracy" if "val_accuracy" in record else "train_loss"
        return name, float(record.get(name, math.nan))

    def _end_epoch(self, record: dict[str, Any], train_loader: Any) -> None:
        """Scheduler, early stopping, checkpoints and callbacks, in the order that makes resume exact."""
        self._step_scheduler(record)
        name, value = self._monitor_value(record)
        better = (value < self.best if "loss" in name else value > self.best) if self.best is not None else True
        if better and not math.isnan(value):
            self.best = value
        if better:
            self.best_epoch = self.epoch
        if self.early_stopping is not None:
            self.stop_training = self.early_stopping.step(record, self.epoch)
        if not is_main_process():
            return
        if self.checkpoint_dir is not None:
            self._write_outputs(self.checkpoint_dir, train_loader, better)
        for cb in self.callbacks:
            cb(self, self.epoch, record)

    def _write_outputs(self, folder: Path, train_loader: Any, better: bool) -> None:
        """last.npz first: it is the commit point and holds everything the other files are made from (best
        metric and epoch, history), so `_repair_outputs` can redo whatever a kill left undone after it."""
        self.save_checkpoint(folder / LAST, train_loader)
        if better:
            self.save_checkpoint(folder / BEST, train_loader)
        self.history.save(folder)

    def resume(self, train_loader: Any = None, checkpoint: bool | str | Path = True) -> Path:
        """Restore the run from `checkpoint` (True: `checkpoint_dir/last.npz`) and finish the writes a kill cut
        short after it was committed; `fit(..., resume=False)` then continues it. Returns the checkpoint's path."""
        path = self._resume_path(checkpoint)
        self.restore(path, train_loader)
        self._repair_outputs(path)
        return path

    def _repair_outputs(self, resumed_from: Path) -> None:
        """After a resume: finish the writes a kill may have cut after the checkpoint `resumed_from` was
        committed (best.npz when that epoch set a new best, both histories), so all files agree with it."""
        if self.checkpoint_dir is None or not is_main_process():
            return
        if self.best_epoch is not None and self.best_epoch == self.epoch:
            copy_file(resumed_from, self.checkpoint_dir / BEST)  # best.npz at that epoch equals last.npz
        elif self.best_epoch is not None and not (self.checkpoint_dir / BEST).is_file():
            warnings.warn(f"fit: {self.checkpoint_dir / BEST} (the weights of epoch {self.best_epoch}) is missing and "
                          f"cannot be rebuilt; it is written again at the next improvement", TrainingWarning,
                          stacklevel=3)
        self.history.save(self.checkpoint_dir)

    def fit(self, train_loader: Iterable[Any], epochs: int, val_loader: Iterable[Any] | None = None,
            resume: bool | str | Path = False) -> History:
        """Train until `epochs` epochs are completed in total (resumed epochs count) or early stopping fires."""
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"fit: `epochs` must be a positive int, got {epochs!r}")
        if self.checkpoint_dir is not None and is_main_process():  # rank 0 alone writes there
            ensure_writable_dir(self.checkpoint_dir)
            remove_stale_temps(self.checkpoint_dir)
        if resume:
            self.resume(train_loader, resume)
        elif self.seed is not None:
            crandom.manual_seed(self.seed)
            for i, gen in enumerate(self.loader_generators(train_loader)):
                gen.manual_seed(self.seed + 1 + i)
        self.stop_training = bool(self.early_stopping and self.early_stopping.stopped_epoch is not None)
        self._loss_watch = LossGrowthWatch()
        while self.epoch < epochs and not self.stop_training:
            start = time.perf_counter()
            lr = float(self.optimizer.param_groups[0]["lr"])
            record: dict[str, Any] = {"epoch": self.epoch + 1, "lr": lr}
            record.update(self.train_epoch(train_loader, self.epoch + 1, epochs))
            if val_loader is not None:
                res = reduce_eval_result(evaluate(self.model, val_loader, self.loss_fn))
                record.update({f"val_{m}": v for m, v in res.as_dict().items() if m in self.metrics})
            record["time"] = time.perf_counter() - start
            self.epoch += 1
            self.history.append(record)
            self._end_epoch(record, train_loader)
        return self.history

    def _resume_path(self, resume: bool | str | Path) -> Path:
        if resume is True:
            if self.checkpoint_dir is None:
                raise ValueError("fit: `resume=True` needs a `checkpoint_dir` to find the last checkpoint in")
            path = self.checkpoint_dir / LAST
        else:
            path = Path(str(resume))
        if is_main_process() and not path.is_file():  # rank 0 reads it for every rank
            raise FileNotFoundError(f"fit: cannot resume, no checkpoint at {path} (a run stopped before its first "
                                    f"epoch finished has none: start it again without resuming)")
        return path


def fit(model: Any, train_loader: Iterable[Any], loss_fn: Callable[[Any, Any], Any] | None, optimizer: Any,
        epochs: int, scheduler: Any = None, val_loader: Iterable[Any] | None = None,
        metrics: Sequence[str] = ("loss", "accuracy", "top5"), checkpoint_dir: str | Path | None = None,
        resume: bool | str | Path = False, early_stopping: EarlyStopping | None = None, seed: int | None = None,
        progress: bool | None = None, callbacks: Sequence[Callback] = (), aux_weight: float | None = None,
        clip_grad_norm: float | None = None) -> History:
    """Train `model` for `epochs` epochs (see `Trainer`); returns the per-epoch `History`."""
    trainer = Trainer(model, loss_fn, optimizer, scheduler, metrics=metrics, checkpoint_dir=checkpoint_dir,
                      early_stopping=early_stopping, seed=seed, progress=progress, callbacks=callbacks,
                      aux_weight=aux_weight, clip_grad_norm=clip_grad_norm)
    return trainer.fit(train_loader, epochs, val_loader=val_loader, resume=resume)


__all__ = ["Trainer", "evaluate", "fit"]
