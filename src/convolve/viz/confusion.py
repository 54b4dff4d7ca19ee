"""A confusion matrix as an annotated heat map (rows: true class, columns: predicted, as `train.confusion_matrix`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve.viz._figure import check_path, finish, new_figure


def _check_matrix(fn: str, matrix: Any, classes: Sequence[str] | None) -> np.ndarray:
    m = np.asarray(getattr(matrix, "data", matrix))
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"{fn}: `matrix` must be a square (K, K) array of counts, got shape {m.shape}")
    if m.dtype.kind not in "iuf" or (m < 0).any():
        raise ValueError(f"{fn}: `matrix` must hold non-negative counts, got dtype {m.dtype}")
    if classes is not None and len(classes) != m.shape[0]:
        raise ValueError(f"{fn}: `classes` has {len(classes)} names but `matrix` is {m.shape[0]}x{m.shape[0]}")
    return m.astype(np.float64)


def plot_confusion_matrix(matrix: Any, classes: Sequence[str] | None = None, path: str | Path | None = None, *,
                          normalize: bool = False, dpi: int = 100) -> Any:
    """Heat map of `matrix` (counts, or row fractions with `normalize`), numbers written in the cells; the Figure."""
    fn = "plot_confusion_matrix"
    out_path = check_path(fn, path)
    m = _check_matrix(fn, matrix, classes)
    k = m.shape[0]
    if normalize:
        totals = m.sum(axis=1, keepdims=True)
        m = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)  # a class without samples: a zero row
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
    size = min(10.0, 2.5 + 0.45 * k)
    fig = new_figure(fn, size + 1.0, size, dpi)
    ax = fig.add_subplot(1, 1, 1)
    shown = ax.imshow(m, cmap="Blues", interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    long_names = k > 10 or max(len(n) for n in names) > 3
    ax.set_xticks(range(k), names, rotation=90 if long_names else 0, fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix" + (" (row-normalized)" if normalize else ""), fontsize=10)
    if k <= 20:
        threshold = m.max() / 2 if m.max() > 0 else 1.0
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=7,
                    color="white" if v > threshold else "black")
    fig.tight_layout()
    return finish(fig, out_path)
