"""Learned filters of a conv layer as an image grid.

Layout and scaling (each filter is min/max scaled to [0, 1] on its own, over all its input channels, so the
relative strength of its channels stays visible; mid-gray is not necessarily zero):
- 3 input channels with `rgb=True` (a first layer on colour images): one colour tile per filter;
- 1 input channel: one grayscale tile per filter, in a near-square grid;
- otherwise: one row per filter, one grayscale tile per input channel (its kernel slice).
At most `max_filters` filters and `max_channels` channels are drawn; the title says when some are left out.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from convolve import nn
from convolve.viz._figure import check_path, finish, mosaic, new_figure, normalize01, show_image
from convolve.viz._layers import conv_weight, find_layer


def filter_tiles(weight: np.ndarray, rgb: bool = True) -> tuple[np.ndarray, int]:
    """(out, in, kh, kw) kernels -> (tiles, columns): per-filter [0, 1] scaled tiles and the grid width.

    Tiles are (out, kh, kw, 3) for colour (in == 3 and `rgb`), else (out * in, kh, kw) row-major by filter.
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"filter_tiles: `weight` must be (out, in, kh, kw), got shape {w.shape}")
    scaled = normalize01(w, axes=(1, 2, 3))  # each filter on its own
    out, cin = w.shape[:2]
    if cin == 3 and rgb:
        return scaled.transpose(0, 2, 3, 1), math.ceil(math.sqrt(out))  # (out, kh, kw, 3)
    if cin == 1:
        return scaled[:, 0], math.ceil(math.sqrt(out))  # (out, kh, kw)
    return scaled.reshape(out * cin, *w.shape[2:]), cin  # (out*in, kh, kw)


def plot_filters(model: nn.Module, layer: str, path: str | Path | None = None, *, rgb: bool = True,
                 max_filters: int = 64, max_channels: int = 16, dpi: int = 100) -> Any:
    """Draw the kernels of conv layer `layer` of `model` (see the module docstring); returns the Figure."""
    fn = "plot_filters"
    out_path = check_path(fn, path)
    module = find_layer(fn, model, layer, conv=True)
    for arg, value in (("max_filters", max_filters), ("max_channels", max_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{fn}: `{arg}` must be a positive int, got {value!r}")
    weight = conv_weight(module)  # (out, in, kh, kw)
    out, cin, kh, kw = weight.shape
    colour = cin == 3 and rgb
    shown = weight[:max_filters] if colour else weight[:max_filters, :max_channels]
    tiles, cols = filter_tiles(shown, rgb=rgb)
    image = mosaic(tiles, cols, gap=1, fill=1.0 if colour else np.nan)  # NaN: transparent gaps
    rows = image.shape[0] / (kh + 1)
    scale = max(0.25, min(1.0, 6.0 / max(cols, rows)))  # inches per tile: big grids get smaller tiles
    fig = new_figure(fn, max(4.0, cols * scale + 0.6), max(2.5, rows * scale + 1.0), dpi)
    ax = fig.add_subplot(1, 1, 1)
    title = f"{layer}: {out} filters of {cin}x{kh}x{kw}" + (" (colour)" if colour else "")
    counts = ((out, shown.shape[0], "filters"), (cin, shown.shape[1], "channels"))
    left_out = [f"{n - m} {what}" for n, m, what in counts if m < n]
    if left_out:
        title += "\nnot shown: " + ", ".join(left_out)
    show_image(ax, image, title, vmin=0.0, vmax=1.0)
    if cin > 1 and not colour:
        ax.set_ylabel("filter (one per row)", fontsize=8)
        ax.set_xlabel("input channel (one per column)", fontsize=8)
    fig.tight_layout()
    return finish(fig, out_path)
