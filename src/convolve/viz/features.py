"""Feature maps: what chosen layers output for one input image, drawn as one grid per layer (the hierarchy).

Each layer's maps share one colour scale (its min/max over all shown channels) by default, so strong and
dead channels can be told apart; `per_map=True` scales every map on its own to show its pattern instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve import nn
from convolve.autograd import no_grad
from convolve.tensor import Tensor
from convolve.viz._figure import check_path, display_image, finish, mosaic, new_figure, normalize01, show_image
from convolve.viz._layers import (
    as_batch,
    check_model,
    eval_mode,
    find_layer,
    recording,
    run_model,
    spatial_conv_names,
)


def feature_maps(model: nn.Module, input: Any, layers: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """{layer name: its (C, H, W) output} for one image (C, H, W) or (1, C, H, W); default: every conv layer
    whose maps are larger than 1x1.

    Runs in eval mode without gradients; layers whose output is not 4-D (e.g. Linear) are returned as (F,).
    """
    fn = "feature_maps"
    check_model(fn, model)
    if isinstance(layers, str):
        raise TypeError(f"{fn}: `layers` must be a list of layer names, got the string {layers!r}")
    x = as_batch(fn, input, model)
    names = spatial_conv_names(fn, model, x) if layers is None else list(layers)
    if not names:
        raise ValueError(f"{fn}: no layers to record ({type(model).__name__} has no conv layer with maps larger "
                         f"than 1x1; pass `layers`)")
    for name in names:
        find_layer(fn, model, name)
    with eval_mode(model), no_grad(), recording(model, names) as outputs:
        run_model(fn, model, Tensor(x))
    missing = [n for n in names if n not in outputs]
    if missing:
        raise ValueError(f"{fn}: layers {missing} were not called by the forward pass (or returned no tensor)")
    return {n: np.asarray(outputs[n].data)[0] for n in names}


def _layer_mosaic(maps: np.ndarray, max_channels: int, per_map: bool) -> tuple[np.ndarray, int]:
    """(C, H, W) maps -> a near-square mosaic of the first `max_channels`, and the number shown."""
    shown = maps[:max_channels]
    scaled = normalize01(shown, axes=(1, 2)) if per_map else normalize01(shown)
    cols = math.ceil(math.sqrt(len(shown)))
    return mosaic(scaled, cols, gap=1), len(shown)


def plot_feature_maps(model: nn.Module, input: Any, layers: Sequence[str] | None = None,
                      path: str | Path | None = None, *, max_channels: int = 16, per_map: bool = False,
                      image: Any = None, dpi: int = 100) -> Any:
    """Draw the input and, next to it, one grid of feature maps per layer; returns the Figure.

    `image` is what to show as the input (e.g. the un-normalized picture); defaults to `input` min/max scaled.
    """
    fn = "plot_feature_maps"
    out_path = check_path(fn, path)
    if isinstance(max_channels, bool) or not isinstance(max_channels, int) or max_channels < 1:
        raise ValueError(f"{fn}: `max_channels` must be a positive int, got {max_channels!r}")
    maps = feature_maps(model, input, layers)
    spatial = {n: m for n, m in maps.items() if m.ndim == 3}
    if not spatial:
        raise ValueError(f"{fn}: none of the layers {list(maps)} outputs (C, H, W) maps")
    x = as_batch(fn, input, model)[0]
    panels = len(spatial) + 1
    fig = new_figure(fn, 2.6 * panels, 3.0, dpi)
    show_image(fig.add_subplot(1, panels, 1), display_image(x if image is None else np.asarray(image)),
               f"input {x.shape[1]}x{x.shape[2]}")
    for i, (name, m) in enumerate(spatial.items(), start=2):
        grid, n = _layer_mosaic(m, max_channels, per_map)
        more = f" (first {n})" if n < m.shape[0] else ""
        show_image(fig.add_subplot(1, panels, i), grid, f"{name}: {m.shape[0]}@{m.shape[1]}x{m.shape[2]}{more}",
                   cmap="viridis", vmin=0.0, vmax=1.0)
    fig.tight_layout()
    return finish(fig, out_path)
