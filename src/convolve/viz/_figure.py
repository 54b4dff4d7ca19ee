"""Matplotlib helpers: a lazy, headless import, figure creation without pyplot, saving by extension, tiling.

Figures are built with `matplotlib.figure.Figure` on an Agg canvas (never `pyplot`), so nothing depends on
a display or on the global backend, and each plot function can return its Figure for a notebook to show.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = "pip install 'convolve[viz]'"
SUFFIXES = (".png", ".svg")


def require_matplotlib(fn: str) -> Any:
    """The `matplotlib` module (Agg canvas), or an ImportError telling how to install it."""
    try:
        import matplotlib
        from matplotlib.backends import backend_agg  # noqa: F401  (the headless canvas must be importable)
    except ImportError as e:
        raise ImportError(f"{fn}: plotting needs matplotlib, which is not installed; {INSTALL_HINT}") from e
    return matplotlib


def new_figure(fn: str, width: float, height: float, dpi: int = 100) -> Any:
    """A `Figure` of width x height inches attached to an Agg canvas (headless; no pyplot state)."""
    require_matplotlib(fn)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def check_path(fn: str, path: Any) -> Path | None:
    """None, or `path` as a Path ending in .png or .svg (checked before any work is done)."""
    if path is None:
        return None
    if not isinstance(path, str | Path):
        raise TypeError(f"{fn}: `path` must be a str or Path, got {type(path).__name__}")
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{fn}: `path` must end in .png or .svg, got {str(p)!r}")
    return p


def finish(fig: Any, path: Path | None) -> Any:
    """Write `fig` to `path` (format from the extension, parent folders created) and return it."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format=path.suffix.lower()[1:], dpi=fig.dpi)
    return fig


def normalize01(a: np.ndarray, axes: Sequence[int] | None = None) -> np.ndarray:
    """Scale to [0, 1] by min/max over `axes` (all by default); constant blocks become 0.5."""
    a = np.asarray(a, dtype=np.float64)
    lo = a.min(axis=None if axes is None else tuple(axes), keepdims=True)
    hi = a.max(axis=None if axes is None else tuple(axes), keepdims=True)
    span = hi - lo
    flat = span == 0
    return np.where(flat, 0.5, (a - lo) / np.where(flat, 1.0, span))


def mosaic(tiles: np.ndarray, cols: int, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """(n, h, w[, 3]) tiles -> one (rows*(h+gap)-gap, cols*(w+gap)-gap[, 3]) image, row-major; `fill` (NaN: drawn
    transparent, i.e. the figure background) between tiles and in unused cells."""
    n, h, w = tiles.shape[:3]
    rows = -(-n // cols)
    extra = tiles.shape[3:]
    padded = np.full((rows * cols, h + gap, w + gap, *extra), fill, dtype=np.float64)
    padded[:n, :h, :w] = tiles
    image = padded.reshape(rows, cols, h + gap, w + gap, *extra).swapaxes(1, 2)  # (rows, h+gap, cols, w+gap[, 3])
    image = image.reshape(rows * (h + gap), cols * (w + gap), *extra)
    return image[: rows * (h + gap) - gap, : cols * (w + gap) - gap]


def show_image(ax: Any, image: np.ndarray, title: str | None = None, cmap: str = "gray", **kwargs: Any) -> Any:
    """imshow without ticks, nearest-neighbour pixels (small maps stay crisp)."""
    shown = ax.imshow(image, cmap=None if image.ndim == 3 else cmap, interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return shown


def display_image(x: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) values -> an (H, W) or (H, W, 3) array in [0, 1] for imshow (min/max scaled)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        x = x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)
    return normalize01(x)
