"""Classification metrics on NumPy arrays: accuracy, top-k, confusion matrix, per-class accuracy.

All functions take logits/scores of shape (N, K) and integer targets of shape (N,); Tensors are accepted too.
`MetricAccumulator` sums them batch by batch so a whole data set never has to be held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convolve.backend import to_numpy


def _scores_targets(fn: str, output: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert `output` (N, K) scores and `target` (N,) class indices."""
    scores = to_numpy(output)
    labels = to_numpy(target)
    if scores.ndim != 2:
        raise ValueError(f"{fn}: `output` must be 2-D (N, num_classes), got shape {scores.shape}")
    if labels.ndim != 1 or labels.shape[0] != scores.shape[0]:
        raise ValueError(f"{fn}: `target` must be 1-D with {scores.shape[0]} entries (one per row of `output`), "
                         f"got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{fn}: `target` must hold integer class indices, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"{fn}: `target` values must be in [0, {scores.shape[1] - 1}], "
                         f"got range [{labels.min()}, {labels.max()}]")
    return scores, labels.astype(np.int64, copy=False)


def topk_correct(output: Any, target: Any, k: int = 1) -> int:
    """Number of rows whose target is among the `k` highest scores (ties broken by index, as argsort)."""
    scores, labels = _scores_targets("topk_correct", output, target)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"topk_correct: `k` must be a positive int, got {k!r}")
    k = min(k, scores.shape[1])
    if k == 1:
        return int((scores.argmax(axis=1) == labels).sum())
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (N, k), unordered
    return int((top == labels[:, None]).any(axis=1).sum())


def accuracy(output: Any, target: Any) -> float:
    """Fraction of rows whose argmax equals the target."""
    scores, labels = _scores_targets("accuracy", output, target)
    if labels.size == 0:
        raise ValueError("accuracy: `output` is empty (0 rows)")
    return topk_correct(scores, labels, 1) / labels.size


def topk_accuracy(output: Any, target: Any, k: int = 5) -> float:
    """Fraction of rows whose target is among the `k` highest scores (top-5 accuracy for k=5)."""
    scores, labels = _scores_targets("topk_accuracy", output, target)
    if labels.size == 0:
        raise ValueError("topk_accuracy: `output` is empty (0 rows)")
    return topk_correct(scores, labels, k) / labels.size


def confusion_matrix(pred: Any, target: Any, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class (sklearn's layout)."""
    p = to_numpy(pred).astype(np.int64, copy=False).ravel()
    t = to_numpy(target).astype(np.int64, copy=False).ravel()
    if p.shape != t.shape:
        raise ValueError(f"confusion_matrix: `pred` and `target` must have the same length, got {p.shape[0]} "
                         f"and {t.shape[0]}")
    for name, v in (("pred", p), ("target", t)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"confusion_matrix: `{name}` values must be in [0, {num_classes - 1}], "
                             f"got range [{v.min()}, {v.max()}]")
    flat = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix (diagonal / row sums); NaN for a class with no samples."""
    m = np.asarray(matrix, dtype=np.float64)
    support = m.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(m) / np.maximum(support, 1), np.nan)


@dataclass
class EvalResult:
    """What `evaluate` measures on a data set."""

    loss: float
    accuracy: float
    top5: float
    per_class_accuracy: np.ndarray
    confusion_matrix: np.ndarray
    num_samples: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """The scalar metrics as a flat dict (for the history), keys optionally prefixed ('val_')."""
        return {f"{prefix}loss": self.loss, f"{prefix}accuracy": self.accuracy, f"{prefix}top5": self.top5}


@dataclass
class MetricAccumulator:
    """Accumulates loss, top-1/top-5 hits and the confusion matrix over batches."""

    num_classes: int | None = None
    loss_sum: float = 0.0
    count: int = 0
    correct: int = 0
    correct5: int = 0
    matrix: np.ndarray | None = field(default=None, repr=False)

    def update(self, output: Any, target: Any, loss: float | None = None) -> None:
        """Add one batch: `output` (N, K) scores, `target` (N,), `loss` the batch's mean loss."""
        scores, labels = _scores_targets("MetricAccumulator.update", output, target)
        if self.num_classes is None:
            self.num_classes = scores.shape[1]
        n = labels.size
        self.count += n
        if loss is not None:
            self.loss_sum += float(loss) * n
        self.correct += topk_correct(scores, labels, 1)
        self.correct5 += topk_correct(scores, labels, 5)
        cm = confusion_matrix(scores.argmax(axis=1), labels, self.num_classes)
        self.matrix = cm if self.matrix is None else self.matrix + cm

    def result(self) -> EvalResult:
        """The accumulated metrics; raises if no batch was seen."""
        if self.count == 0 or self.matrix is None:
            raise ValueError("MetricAccumulator.result: no samples were accumulated (empty data loader?)")
        return EvalResult(loss=self.loss_sum / self.count, accuracy=self.correct / self.count,
                          top5=self.correct5 / self.count, per_class_accuracy=per_class_accuracy(self.matrix),
                          confusion_matrix=self.matrix, num_samples=self.count)
