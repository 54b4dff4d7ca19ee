"""Training curves (loss, accuracy, learning rate; train vs validation) from a training history.

A history is what `convolve.train` writes per epoch: `history.csv` / `history.json` in the run folder (columns
such as epoch, lr, train_loss, train_accuracy, val_loss, val_accuracy), a `History`, or a dict of lists.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from convolve.viz._figure import check_path, finish, new_figure

PANELS = (("loss", "loss"), ("accuracy", "accuracy"), ("lr", "learning rate"))


def _float(value: Any) -> float:
    return math.nan if value is None or value == "" else float(value)


def _read_file(fn: str, path: Path) -> dict[str, list[Any]]:
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{fn}: {path} is not valid JSON ({e}); truncated? `convolve train --resume` "
                             f"rewrites a run's histories from its last.npz") from None
        if not isinstance(data, dict):
            raise ValueError(f"{fn}: {path} must hold a JSON object of lists (History.save_json), "
                             f"got {type(data).__name__}")
        return data
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
        for i, row in enumerate(rows, start=2):
            if None in row or None in row.values():  # more or fewer fields than the header
                raise ValueError(f"{fn}: {path} line {i} has not the {len(reader.fieldnames or [])} fields of its "
                                 f"header (truncated?); `convolve train --resume` rewrites a run's histories")
        return {k: [r.get(k) for r in rows] for k in (rows[0].keys() if rows else [])}
    raise ValueError(f"{fn}: a history file must be .csv or .json, got {str(path)!r}")


def load_history(source: Any) -> dict[str, np.ndarray]:
    """{metric: float array per epoch} from a dict of lists, a `History`, a .csv/.json file or a run folder."""
    fn = "load_history"
    if hasattr(source, "to_dict") and callable(source.to_dict):
        source = source.to_dict()
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            found = [path / n for n in ("history.json", "history.csv") if (path / n).is_file()]
            if not found:
                raise FileNotFoundError(f"{fn}: {path} holds no history.json or history.csv")
            path = found[0]
        elif not path.is_file():
            raise FileNotFoundError(f"{fn}: no history file at {path}")
        source = _read_file(fn, path)
    if not isinstance(source, dict):
        raise TypeError(f"{fn}: `source` must be a dict of lists, a History, or a path, got {type(source).__name__}")
    try:
        history = {str(k): np.array([_float(v) for v in vals], dtype=np.float64) for k, vals in source.items()}
    except (TypeError, ValueError) as e:
        raise ValueError(f"{fn}: every metric must be a list of numbers ({e})") from e
    lengths = {len(v) for v in history.values()}
    if len(lengths) > 1:
        raise ValueError(f"{fn}: metrics have different lengths: " + ", ".join(f"{k} {len(v)}" for k, v in
                                                                             history.items()))
    return history


def _panel_keys(history: dict[str, np.ndarray], suffix: str) -> list[str]:
    if suffix == "lr":
        return [k for k in history if k == "lr" or k.startswith("lr_")]
    return [k for k in history if k == suffix or k.endswith("_" + suffix)]


def plot_training_curves(history: Any, path: str | Path | None = None, *, dpi: int = 100) -> Any:
    """Loss, accuracy and learning-rate panels (train solid, validation dashed) against the epoch; the Figure."""
    fn = "plot_training_curves"
    out_path = check_path(fn, path)
    h = load_history(history)
    panels = [(title, keys) for suffix, title in PANELS if (keys := _panel_keys(h, suffix))]
    if not any(title != "learning rate" for title, _ in panels):
        raise ValueError(f"{fn}: the history has no loss or accuracy metric (names ending in '_loss' or "
                         f"'_accuracy'); its metrics are: {', '.join(h) or 'none'}")
    n = len(next(iter(h.values())))
    epochs = h.get("epoch", np.arange(1, n + 1, dtype=np.float64))
    fig = new_figure(fn, 3.4 * len(panels), 3.0, dpi)
    for i, (title, keys) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        for key in keys:
            style = "--" if key.startswith(("val", "test")) else "-"
            ax.plot(epochs, h[key], style, marker="o" if n <= 30 else None, markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if title == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return finish(fig, out_path)
