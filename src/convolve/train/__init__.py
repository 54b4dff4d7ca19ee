"""Training: `fit`/`Trainer` (checkpoints, exact resume, early stopping), `evaluate` and classification metrics."""

from convolve.train.callbacks import EarlyStopping
from convolve.train.checkpoint import load_checkpoint, save_checkpoint
from convolve.train.guards import TrainingWarning
from convolve.train.history import History
from convolve.train.metrics import (
    EvalResult,
    MetricAccumulator,
    accuracy,
    confusion_matrix,
    per_class_accuracy,
    topk_accuracy,
    topk_correct,
)
from convolve.train.trainer import BEST, LAST, Trainer, evaluate, fit

__all__ = [
    "BEST",
    "LAST",
    "EarlyStopping",
    "EvalResult",
    "History",
    "MetricAccumulator",
    "Trainer",
    "TrainingWarning",
    "accuracy",
    "confusion_matrix",
    "evaluate",
    "fit",
    "load_checkpoint",
    "per_class_accuracy",
    "save_checkpoint",
    "topk_accuracy",
    "topk_correct",
]
