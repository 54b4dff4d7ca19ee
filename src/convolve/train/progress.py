"""A tqdm progress bar for one epoch: loss, accuracy, images/s and ETA.

Shown by default on a terminal and in a Jupyter notebook (where stderr is not a terminal), silent otherwise
(logs, CI). `tqdm.auto` draws an ipywidgets bar across the full cell width in a notebook when ipywidgets is
installed (`pip install 'convolve[notebook]'`), and a text bar sized to the terminal elsewhere.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (IPython's ZMQ shell); IPython is not imported to find out."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_enabled(progress: bool | None, stream: TextIO | None = None) -> bool:
    """`progress=None` means 'on a terminal or in a notebook'; False never; True always."""
    if progress is not None:
        return bool(progress)
    s = stream if stream is not None else sys.stderr
    isatty = getattr(s, "isatty", None)
    return bool(isatty and isatty()) or in_notebook()


def make_bar(total: int | None, desc: str, stream: TextIO | None = None) -> Any:
    """A `tqdm.auto` bar: the notebook widget at full width, or a text bar as wide as the terminal."""
    from tqdm.auto import tqdm

    common = {"total": total, "desc": desc, "unit": "batch", "leave": True}
    if _is_widget(tqdm):
        return tqdm(**common, ncols="100%")  # a number would be a fixed width in pixels
    size = shutil.get_terminal_size((100, 20))  # a pty that reports size 0 would hide the bar
    return tqdm(**common, ncols=min(size.columns, 160), nrows=size.lines,
                file=stream if stream is not None else sys.stderr)


def _is_widget(bar_class: type) -> bool:
    """Whether tqdm.auto chose the ipywidgets bar (a Jupyter kernel with ipywidgets installed)."""
    notebook = sys.modules.get("tqdm.notebook")
    return notebook is not None and issubclass(bar_class, notebook.tqdm_notebook) and in_notebook()


class EpochProgress:
    """Tracks running loss/accuracy/throughput over an epoch and shows them on a tqdm bar if enabled."""

    def __init__(self, total: int | None, desc: str, enabled: bool, stream: TextIO | None = None) -> None:
        self.bar: Any = None
        if enabled:
            self.bar = make_bar(total, desc, stream)
        self.start = time.perf_counter()
        self.loss_sum = 0.0
        self.correct = 0
        self.count = 0

    def update(self, loss: float, correct: int, n: int) -> None:
        """Record one batch of `n` images with mean loss `loss` and `correct` top-1 hits."""
        self.loss_sum += loss * n
        self.correct += correct
        self.count += n
        if self.bar is not None:
            self.bar.set_postfix(self.postfix(), refresh=False)
            self.bar.update(1)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.count, 1)

    @property
    def images_per_second(self) -> float:
        return self.count / max(self.elapsed, 1e-9)

    def postfix(self) -> dict[str, str]:
        return {"loss": f"{self.loss:.4f}", "acc": f"{self.accuracy:.4f}", "img/s": f"{self.images_per_second:.0f}"}

    def close(self, extra: dict[str, float] | None = None) -> None:
        """Show the final epoch figures (plus e.g. validation metrics) and close the bar."""
        if self.bar is not None:
            post = self.postfix()
            post.update({k: f"{v:.4f}" for k, v in (extra or {}).items()})
            self.bar.set_postfix(post, refresh=True)
            self.bar.close()
