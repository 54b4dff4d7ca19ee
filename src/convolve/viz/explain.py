"""Drawing saliency and Grad-CAM maps (the numbers come from `convolve.viz.attribution`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve import nn
from convolve.viz._figure import check_path, display_image, finish, new_figure, normalize01, show_image
from convolve.viz._layers import as_batch, last_spatial_conv
from convolve.viz.attribution import grad_cam, predict_class, saliency


def _class_name(target: int, classes: Sequence[str] | None) -> str:
    return str(classes[target]) if classes is not None and 0 <= target < len(classes) else str(target)


def _three_panels(fn: str, picture: np.ndarray, heat: np.ndarray, titles: tuple[str, str, str], dpi: int) -> Any:
    """Input | heat map | heat map over the input (each heat map min/max scaled to [0, 1] for display)."""
    fig = new_figure(fn, 7.5, 2.9, dpi)
    heat01 = normalize01(heat)
    show_image(fig.add_subplot(1, 3, 1), picture, titles[0])
    show_image(fig.add_subplot(1, 3, 2), heat01, titles[1], cmap="inferno", vmin=0.0, vmax=1.0)
    ax = fig.add_subplot(1, 3, 3)
    show_image(ax, picture, titles[2])
    ax.imshow(heat01, cmap="jet", alpha=0.45, interpolation="bilinear", vmin=0.0, vmax=1.0)
    fig.tight_layout()
    return fig


def plot_saliency(model: nn.Module, input: Any, target: int | None = None, path: str | Path | None = None, *,
                  image: Any = None, classes: Sequence[str] | None = None, dpi: int = 100) -> Any:
    """The input, its saliency map for class `target` (default: predicted) and an overlay; returns the Figure."""
    fn = "plot_saliency"
    out_path = check_path(fn, path)
    x = as_batch(fn, input, model)
    predicted = predict_class(model, x)
    t = predicted if target is None else target
    heat = saliency(model, x, t)
    picture = display_image(x[0] if image is None else np.asarray(image))
    titles = (f"input (predicted {_class_name(predicted, classes)})",
              f"saliency for class {_class_name(t, classes)}", "overlay")
    return finish(_three_panels(fn, picture, heat, titles, dpi), out_path)


def plot_grad_cam(model: nn.Module, input: Any, layer: str | None = None, target: int | None = None,
                  path: str | Path | None = None, *, image: Any = None, classes: Sequence[str] | None = None,
                  dpi: int = 100) -> Any:
    """The input, Grad-CAM of class `target` (default: predicted) at `layer` (default: as `grad_cam`) and an
    overlay; returns the Figure."""
    fn = "plot_grad_cam"
    out_path = check_path(fn, path)
    x = as_batch(fn, input, model)
    layer = layer if layer is not None else last_spatial_conv(fn, model, x, activation=True)
    predicted = predict_class(model, x)
    t = predicted if target is None else target
    heat = grad_cam(model, x, layer, t)
    picture = display_image(x[0] if image is None else np.asarray(image))
    titles = (f"input (predicted {_class_name(predicted, classes)})",
              f"Grad-CAM at {layer}, class {_class_name(t, classes)}", "overlay")
    return finish(_three_panels(fn, picture, heat, titles, dpi), out_path)
