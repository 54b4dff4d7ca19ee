"""Layer geometry without running anything: output sizes, receptive fields, im2col shapes, MACs.

Receptive-field arithmetic, per spatial axis, for a window of kernel k, stride s, padding p, dilation d
applied to a map whose units each see `size` input pixels, `jump` input pixels apart, the first one
centred at `start`:

    size_out  = size_in + (k - 1) * d * jump_in
    jump_out  = jump_in * s
    start_out = start_in + ((k - 1) * d / 2 - p) * jump_in

The input image is size 1, jump 1, start 0.5 (pixel i covers [i, i + 1), so pixel 0's centre is 0.5);
`start` is the centre of the top-left output unit's field in input-pixel coordinates (negative when the
field hangs over the zero padding). Where branches meet (Inception's concatenation, ResNet's addition),
the merged field is the largest of the branches (`AxisField.merge`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from convolve import nn
from convolve.nn.functional.geometry import same_padding, sliding_output_size, transposed_output_size


@dataclass(frozen=True)
class Window:
    """A sliding window along one axis (a conv or pooling layer's geometry)."""

    kernel: int
    stride: float = 1
    padding: int = 0
    dilation: int = 1


@dataclass(frozen=True)
class AxisField:
    """The receptive field of one unit along one axis: `size` pixels, `jump` apart, first centred at `start`."""

    size: float = 1
    jump: float = 1
    start: float = 0.5

    def through(self, w: Window) -> AxisField:
        """The field after one more window layer (the composition rule of the module docstring)."""
        span = (w.kernel - 1) * w.dilation
        return AxisField(_num(self.size + span * self.jump), _num(self.jump * w.stride),
                         _num(self.start + (span / 2 - w.padding) * self.jump))

    def covering(self, n: int) -> AxisField:
        """The field of a unit that sees all `n` positions of a map with this field (Flatten, global pooling)."""
        return self.through(Window(kernel=n, stride=n))

    @staticmethod
    def merge(fields: Sequence[AxisField]) -> AxisField:
        """Where branches meet (concatenation, addition): the largest field; ties keep the first branch's."""
        return max(fields, key=lambda f: f.size)


INPUT_FIELD = AxisField()


def _num(x: float) -> float:
    """An int when `x` is integral (fields are usually whole pixels), else the float."""
    return int(x) if float(x).is_integer() else x


def compose(windows: Sequence[Window], field: AxisField = INPUT_FIELD) -> AxisField:
    """The field after a plain stack of window layers (e.g. three 3x3 convs: size 7)."""
    for w in windows:
        field = field.through(w)
    return field


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                ceil_mode: bool = False) -> int:
    """Output length along one axis, PyTorch's rule: floor((W + 2P - D(F-1) - 1) / S) + 1 (or ceil).

    With `ceil_mode` the last window must start inside the input or the left padding, as in PyTorch.
    """
    out = sliding_output_size(size, kernel, stride, padding, dilation, ceil_mode)
    if out < 1:
        raise ValueError(f"output_size: the dilated kernel ({dilation * (kernel - 1) + 1}) is larger than the "
                         f"padded input ({size + 2 * padding})")
    return out


class Im2colShapes(NamedTuple):
    """Matrix shapes of a convolution as one GEMM: weights (K, C kh kw) @ columns (C kh kw, oh ow) = output."""

    columns: tuple[int, int]
    weights: tuple[int, int]
    output: tuple[int, int]


def im2col_shapes(in_channels: int, in_size: tuple[int, int], kernel: tuple[int, int], out_channels: int,
                  stride: int = 1, padding: int = 0, dilation: int = 1) -> Im2colShapes:
    """The im2col/GEMM shapes of one image's convolution (AlexNet conv1: 363 x 3025 and 96 x 363)."""
    oh, ow = (output_size(n, k, stride, padding, dilation) for n, k in zip(in_size, kernel))
    rows = in_channels * kernel[0] * kernel[1]
    return Im2colShapes((rows, oh * ow), (out_channels, rows), (out_channels, oh * ow))


# ----- what a module does to shapes and fields -----------------------------------------------------------------

ELEMENTWISE: tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LogSoftmax,
    nn.Dropout, nn.Dropout2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.LocalResponseNorm, nn.Identity,
)
ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _tuple(value: Any, n: int) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,) * n


def spatial_dims(module: Any) -> int:
    """How many trailing axes `module` slides over: 1 for *1d layers, else 2 (from `nd` or `kernel_size`)."""
    nd = getattr(module, "nd", None)
    if isinstance(nd, int):
        return nd
    kernel = getattr(module, "kernel_size", None)
    return len(kernel) if isinstance(kernel, tuple | list) else 2


def is_windowed(module: Any) -> bool:
    """Convs, poolings and any module that declares `kernel_size` and `stride` (e.g. LeNet's PartialConv2d)."""
    return hasattr(module, "kernel_size") and hasattr(module, "stride") and not getattr(module, "transposed", False)


def module_windows(module: Any, in_spatial: Sequence[int]) -> tuple[Window, ...] | None:
    """One `Window` per spatial axis for a sliding-window module, None for any other module.

    Adaptive pooling from n to o positions uses PyTorch's windows [floor(i n / o), ceil((i + 1) n / o)): the
    largest one as kernel and n / o as stride (exact when o divides n; an upper bound otherwise).
    """
    nd = len(in_spatial)
    if isinstance(module, ADAPTIVE):
        outs = [n if o is None else o for n, o in zip(in_spatial, _tuple(module.output_size, nd))]
        return tuple(Window(max(math.ceil((i + 1) * n / o) - (i * n) // o for i in range(o)), _num(n / o))
                     for n, o in zip(in_spatial, outs))
    if isinstance(module, nn.ConvTranspose2d):  # each output sees ceil(k/s) inputs, 1/s input pixels apart
        return tuple(Window(math.ceil(k * d / s), _num(1 / s)) for k, s, d in
                     zip(module.kernel_size, module.stride, module.dilation))
    if not is_windowed(module):
        return None
    ks, ss = _tuple(module.kernel_size, nd), _tuple(module.stride, nd)
    ds = _tuple(getattr(module, "dilation", 1), nd)
    pad = getattr(module, "padding", 0)
    if pad == "valid":
        pad = 0
    ps = tuple(lo for lo, _ in same_padding(ks, ds)) if pad == "same" else _tuple(pad, nd)
    return tuple(Window(k, s, p, d) for k, s, p, d in zip(ks, ss, ps, ds))


def infer_output_shape(module: Any, input_shape: Sequence[int]) -> tuple[int, ...] | None:
    """The output shape `module` should produce for `input_shape`, from its arguments alone (None: unknown)."""
    shape = tuple(input_shape)
    if isinstance(module, ELEMENTWISE):
        return shape
    if isinstance(module, nn.Linear):
        return (*shape[:-1], module.out_features)
    if isinstance(module, nn.Flatten):
        start, end = module.start_dim % len(shape), module.end_dim % len(shape)
        return (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])
    nd = spatial_dims(module)
    if not (isinstance(module, (*ADAPTIVE, nn.ConvTranspose2d)) or is_windowed(module)) or len(shape) < nd + 1:
        return None
    lead, spatial = shape[:-nd - 1], shape[-nd:]
    channels = getattr(module, "out_channels", shape[-nd - 1])
    if isinstance(module, ADAPTIVE):
        out = tuple(n if o is None else o for n, o in zip(spatial, _tuple(module.output_size, nd)))
        return (*lead, channels, *out)
    if isinstance(module, nn.ConvTranspose2d):
        out = tuple(transposed_output_size(n, k, s, p, op, d) for n, k, s, p, d, op in zip(
            spatial, module.kernel_size, module.stride, module.padding, module.dilation, module.output_padding))
        return (*lead, channels, *out)
    if getattr(module, "padding", None) == "same":  # total padding d(k-1), the odd pixel at the end
        return (*lead, channels, *spatial)
    windows = module_windows(module, spatial) or ()
    ceil_mode = bool(getattr(module, "ceil_mode", False))
    out = tuple(output_size(n, w.kernel, int(w.stride), w.padding, w.dilation, ceil_mode)
                for n, w in zip(spatial, windows))
    return (*lead, channels, *out)


def module_costs(module: Any, input_shape: Sequence[int], output_shape: Sequence[int]) -> tuple[int, int]:
    """(MACs for the whole batch, parameters without weight sharing) of one call of `module`.

    Convolutions (anything windowed with a `weight`): MACs = N x output positions x weight elements;
    without sharing each output position needs its own filters and biases (a locally connected layer):
    output positions x (weight elements + bias elements), i.e. out_elements x (weights per filter + 1).
    Transposed convs: MACs = N x input positions x weight elements. Linear: one MAC per weight per row.
    Everything else (activations, normalisation, pooling, dropout) counts 0 MACs; its unshared count is
    its parameter count (BatchNorm's per-channel scale is kept as is).
    """
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    params = sum(p.numel() for p in module.parameters(recurse=False)) if isinstance(module, nn.Module) else 0
    if not isinstance(weight, nn.Parameter):
        return 0, params
    n_bias = bias.numel() if isinstance(bias, nn.Parameter) else 0
    if isinstance(module, nn.Linear):
        return math.prod(output_shape[:-1]) * weight.numel(), params
    nd = spatial_dims(module)
    if isinstance(module, nn.ConvTranspose2d):
        return input_shape[0] * math.prod(input_shape[-nd:]) * weight.numel(), params
    if is_windowed(module):
        positions = math.prod(output_shape[-nd:])
        batch = math.prod(output_shape[:-nd - 1])
        return batch * positions * weight.numel(), positions * (weight.numel() + n_bias)
    return 0, params
