"""A tqdm progress bar for one epoch: loss, accuracy, images/s and ETA; silent when not on a terminal."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO


def progress_enabled(progress: bool | None, stream: TextIO | None = None) -> bool:
    """`progress=None` means 'only if the stream is a TTY'; False never; True always."""
    if progress is not None:
        return bool(progress)
    s = stream if stream is not None else sys.stderr
    isatty = getattr(s, "isatty", None)
    return bool(isatty and isatty())


class EpochProgress:
    """Tracks running loss/accuracy/throughput over an epoch and shows them on a tqdm bar if enabled."""

    def __init__(self, total: int | None, desc: str, enabled: bool, stream: TextIO | None = None) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            size = shutil.get_terminal_size((100, 20))  # a pty that reports size 0 would hide the bar
            self.bar = tqdm(total=total, desc=desc, unit="batch", leave=True, ncols=min(size.columns, 160),
                            nrows=size.lines,
                            file=stream if stream is not None else sys.stderr)
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
