"""The receptive field of one unit (layer, channel, y, x): from the inspector's numbers, and measured by gradients.

Theory (`receptive_field`): `convolve.inspect.summary` gives each layer's field per axis as (size, jump, start);
unit index i then sees the input interval [start + i * jump - size / 2, start + i * jump + size / 2) in pixel
coordinates (pixel j covers [j, j + 1)). The box may hang over the border (zero padding); `clipped()` cuts it.
Practice (`empirical_receptive_field`): the input pixels whose gradient of that unit is nonzero. It lies inside
the theoretical box and equals it unless a ReLU/max pool switches paths off or weights are exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convolve import nn
from convolve.autograd import enable_grad
from convolve.tensor import Tensor
from convolve.viz._figure import check_path, display_image, finish, new_figure, show_image
from convolve.viz._layers import as_batch, check_model, eval_mode, find_layer, keep_param_grads, recording, run_model


@dataclass(frozen=True)
class FieldBox:
    """A receptive field in input-pixel coordinates: rows [top, bottom), columns [left, right) (unclipped)."""

    top: float
    left: float
    bottom: float
    right: float

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def width(self) -> float:
        return self.right - self.left

    def clipped(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) as whole pixels inside a height x width image."""
        top, left = max(0, int(np.floor(self.top))), max(0, int(np.floor(self.left)))
        bottom, right = min(height, int(np.ceil(self.bottom))), min(width, int(np.ceil(self.right)))
        return top, left, bottom, right


def _check_unit(fn: str, shape: tuple[int, ...], layer: str, channel: Any, y: Any, x: Any) -> None:
    """`channel`, `y`, `x` must index the (N, C, H, W) output of `layer`."""
    if len(shape) != 4:
        raise ValueError(f"{fn}: layer {layer!r} outputs shape {shape}, not (N, C, H, W) maps")
    for arg, value, n in (("channel", channel, shape[1]), ("y", y, shape[2]), ("x", x, shape[3])):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value < n:
            raise ValueError(f"{fn}: `{arg}` must be in [0, {n}) for layer {layer!r} with output "
                             f"{shape[1]}@{shape[2]}x{shape[3]}, got {value!r}")


def receptive_field(model: nn.Module, layer: str, input_size: tuple[int, int, int], channel: int, y: int,
                    x: int) -> FieldBox:
    """The theoretical field of unit (`channel`, `y`, `x`) of leaf layer `layer` for a (C, H, W) input."""
    fn = "receptive_field"
    from convolve import inspect

    find_layer(fn, model, layer)
    rows = inspect.summary(model, tuple(input_size)).rows
    by_name = {r.name: r for r in reversed(rows)}  # the first call of each layer
    row = by_name.get(layer)
    if row is None or row.receptive_field is None:
        valid = [r.name for r in rows if r.receptive_field is not None and len(r.output_shape) == 4]
        raise ValueError(f"{fn}: no receptive field recorded for {layer!r} (only leaf layers have one); "
                         f"valid layers: {', '.join(dict.fromkeys(valid))}")
    _check_unit(fn, row.output_shape, layer, channel, y, x)
    fy, fx = row.receptive_field
    cy, cx = fy.start + y * fy.jump, fx.start + x * fx.jump
    return FieldBox(cy - fy.size / 2, cx - fx.size / 2, cy + fy.size / 2, cx + fx.size / 2)


def empirical_receptive_field(model: nn.Module, input: Any, layer: str, channel: int, y: int, x: int) -> np.ndarray:
    """(H, W) |d unit / d input| summed over input channels; its nonzero pixels are the measured field."""
    fn = "empirical_receptive_field"
    check_model(fn, model)
    find_layer(fn, model, layer)
    xb = Tensor(as_batch(fn, input, model), requires_grad=True)  # (1, C, H, W)
    with eval_mode(model), enable_grad(), recording(model, [layer]) as outputs:
        run_model(fn, model, xb)
    if layer not in outputs:
        raise ValueError(f"{fn}: layer {layer!r} was not called by the forward pass")
    out = outputs[layer]
    _check_unit(fn, tuple(out.shape), layer, channel, y, x)
    seed = np.zeros(out.shape, dtype=out.dtype)
    seed[0, channel, y, x] = 1.0
    with keep_param_grads(model):
        out.backward(seed)
    if xb.grad is None:
        return np.zeros(xb.shape[2:])
    return np.abs(np.asarray(xb.grad.data, dtype=np.float64)[0]).sum(axis=0)  # (H, W)


def plot_receptive_field(model: nn.Module, input: Any, layer: str, channel: int, y: int, x: int,
                         path: str | Path | None = None, *, image: Any = None, dpi: int = 100) -> Any:
    """The unit's theoretical field as a rectangle on the input, and next to it the input gradient; the Figure."""
    fn = "plot_receptive_field"
    out_path = check_path(fn, path)
    xb = as_batch(fn, input, model)
    box = receptive_field(model, layer, tuple(xb.shape[1:]), channel, y, x)
    grad = empirical_receptive_field(model, xb, layer, channel, y, x)
    h, w = xb.shape[2:]
    top, left, bottom, right = box.clipped(h, w)
    support = np.argwhere(grad > 0)
    measured = "none" if support.size == 0 else "{}x{}".format(*(support.max(axis=0) - support.min(axis=0) + 1))
    fig = new_figure(fn, 6.4, 3.6, dpi)
    titles = (f"{layer}[{channel}, {y}, {x}]: field {box.height:g}x{box.width:g}",
              f"|d unit / d input| (nonzero {measured})")
    pictures = (display_image(xb[0] if image is None else np.asarray(image)), grad)
    for i, (pic, title) in enumerate(zip(pictures, titles), start=1):
        ax = fig.add_subplot(1, 2, i)
        show_image(ax, pic, title, cmap="gray" if i == 1 else "magma")
        _rectangle(ax, box.left, box.top, box.width, box.height, "--", 1.0)  # unclipped (over the padding)
        _rectangle(ax, left, top, right - left, bottom - top, "-", 2.0)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    fig.tight_layout()
    return finish(fig, out_path)


def _rectangle(ax: Any, left: float, top: float, width: float, height: float, style: str, lw: float) -> None:
    """A rectangle in pixel-edge coordinates (imshow puts pixel j's centre at j, its edges at j -/+ 0.5)."""
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False, edgecolor="#00e5ff",
                           linestyle=style, linewidth=lw))
