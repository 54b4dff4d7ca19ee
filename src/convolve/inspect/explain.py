"""`explain()`: the worked arithmetic of one convolution or pooling layer, as a lecture would write it on the board.

The numbers come from the code the layers run: output sizes and 'same' splits from the one geometry module
(`nn.functional.geometry`: `sliding_output_size`, `parse_padding`, `window_args`), parameters from the layer's
own tensors, MACs and unshared counts from `inspect.geometry.module_costs`, receptive fields from
`inspect.geometry.AxisField` (or, for a layer inside a model, from `summary`). `str()` of the result
is the text `convolve explain` prints (see `explain_text.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from convolve import nn
from convolve.inspect.geometry import INPUT_FIELD, AxisField, module_costs, module_windows
from convolve.nn.functional.geometry import parse_padding, sliding_output_size, window_args

LAYERS: dict[str, type] = {"conv1d": nn.Conv1d, "conv2d": nn.Conv2d, "maxpool1d": nn.MaxPool1d,
                           "maxpool2d": nn.MaxPool2d, "avgpool1d": nn.AvgPool1d, "avgpool2d": nn.AvgPool2d}
CONVS = (nn.Conv1d, nn.Conv2d)
POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)
CONV_ATTRS = ("weight", "kernel_size", "stride", "padding", "dilation", "out_channels")


def is_conv(module: Any) -> bool:
    """nn.Conv1d/2d, or a module with a conv's weight and geometry (LeNet-5's partially connected C3)."""
    return isinstance(module, CONVS) or (isinstance(module, nn.Module) and not getattr(module, "transposed", False)
                                         and all(hasattr(module, a) for a in CONV_ATTRS))


def explainable(module: Any) -> bool:
    return is_conv(module) or isinstance(module, POOLS)
AXIS_NAMES = {1: ("length",), 2: ("height", "width")}


@dataclass(frozen=True)
class AxisArithmetic:
    """The output-size arithmetic along one spatial axis: out = floor((W + P0 + P1 - D(F-1) - 1) / S) + 1."""

    name: str  # 'height', 'width' or 'length'
    size: int  # W
    kernel: int  # F
    stride: int  # S
    pad_before: int
    pad_after: int
    dilation: int  # D
    ceil_mode: bool
    output: int  # what the layer's output-size rule returns

    @property
    def effective_kernel(self) -> int:
        """The pixels a dilated kernel spans: D(F-1)+1 (a 3-tap kernel with dilation 2 sees 5)."""
        return self.dilation * (self.kernel - 1) + 1

    @property
    def padded(self) -> int:
        return self.size + self.pad_before + self.pad_after

    @property
    def quotient(self) -> Fraction:
        """(W + 2P - D(F-1) - 1) / S + 1 before rounding (the lecture's (W - F + 2P)/S + 1)."""
        return Fraction(self.padded - self.effective_kernel, self.stride) + 1

    @property
    def exact(self) -> bool:
        return self.quotient.denominator == 1

    @property
    def covered(self) -> int:
        """Padded pixels from the first window's first tap to the last window's last tap."""
        return (self.output - 1) * self.stride + self.effective_kernel

    @property
    def unused(self) -> int:
        """Padded pixels at the end that no window reaches (when the quotient is floored)."""
        return max(self.padded - self.covered, 0)

    @property
    def overhang(self) -> int:
        """Pixels the last window reaches past the padded input (ceil_mode)."""
        return max(self.covered - self.padded, 0)


@dataclass(frozen=True)
class LayerExplanation:
    """Everything `explain` works out for one layer (shapes without the batch; counts for one image)."""

    layer: str  # the layer's name in its model, or its type
    type: str  # 'Conv2d', 'MaxPool2d', ...
    input_shape: tuple[int, ...]  # (C, H, W) or (C, L)
    output_shape: tuple[int, ...]  # (K, oh, ow) or (K, ol)
    axes: tuple[AxisArithmetic, ...]
    groups: int
    padding_mode: str  # 'zeros', 'reflect', ... (convolutions); '-inf' / 'zeros' for max / average pooling
    padding_arg: Any  # the padding as given to the layer ('same', 2, (1, 2), ...)
    maps_per_filter: tuple[int, ...]  # input maps each filter reads: C/groups, or a connection table's counts
    weights: int  # weight elements (0 for pooling)
    biases: int
    unshared_params: int  # one set of weights per output position (a locally connected layer)
    macs: int  # multiply-accumulates for one image
    receptive_field: tuple[AxisField, ...]
    field_of: str  # what the field is measured in: "this layer's input" or "the model's input"
    dtype: str
    itemsize: int

    @property
    def is_conv(self) -> bool:
        return self.weights > 0

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(a.kernel for a in self.axes)

    @property
    def weights_per_filter(self) -> int | None:
        """C/groups x kh x kw: the weights one output neuron multiplies with its window (None: they differ)."""
        if not self.is_conv or len(set(self.maps_per_filter)) != 1:
            return None
        return self.maps_per_filter[0] * math.prod(self.kernel)

    @property
    def partial(self) -> bool:
        """Filters read different numbers of input maps (a connection table, as LeNet-5's C3)."""
        return self.is_conv and self.weights_per_filter is None

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def output_elements(self) -> int:
        return math.prod(self.output_shape)

    @property
    def input_elements(self) -> int:
        return math.prod(self.input_shape)

    @property
    def fully_connected_params(self) -> int:
        """A dense layer from every input value to every output value, with one bias per output."""
        return (self.input_elements + 1) * self.output_elements

    @property
    def flops(self) -> int:
        """FLOPs = 2 x MACs (one multiply and one add per multiply-accumulate)."""
        return 2 * self.macs

    @property
    def im2col(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
        """(columns, weights, product) matrix shapes of the convolution as one GEMM per group (None: pooling)."""
        if not self.is_conv:
            return None
        positions = math.prod(self.output_shape[1:])
        k = self.output_shape[0] // self.groups
        rows = self.input_shape[0] // self.groups * math.prod(self.kernel)  # a connection table: zeros elsewhere
        return (rows, positions), (k, rows), (k, positions)

    def memory(self) -> dict[str, int]:
        """Bytes for one image: input, output, parameters and (convolutions) the im2col column matrix."""
        out = {"input": self.input_elements * self.itemsize, "output": self.output_elements * self.itemsize,
               "parameters": self.params * self.itemsize}
        if self.im2col is not None:
            (rows, cols), _, _ = self.im2col
            out["im2col columns"] = rows * cols * self.groups * self.itemsize
        return out

    def __str__(self) -> str:
        from convolve.inspect.explain_text import format_explanation

        return format_explanation(self)


def _layer_class(kind: str) -> type:
    key = kind.lower().replace("_", "").replace("-", "")
    if key not in LAYERS:
        raise ValueError(f"explain: `layer` must be a module or one of {', '.join(sorted(LAYERS))} "
                         f"(underscores allowed, e.g. max_pool2d), got {kind!r}")
    return LAYERS[key]


def _check_input_size(input_size: Any, nd: int, what: str) -> tuple[int, ...]:
    ok = isinstance(input_size, Sequence) and len(input_size) == nd + 1 and all(
        isinstance(n, int | np.integer) and not isinstance(n, bool) and n > 0 for n in input_size)
    if not ok:
        layout = "(C, L)" if nd == 1 else "(C, H, W)"
        raise ValueError(f"explain: `input_size` for {what} must be {layout}: {nd + 1} positive ints without the "
                         f"batch, got {input_size!r}")
    return tuple(int(n) for n in input_size)


def _build(cls: type, input_size: Any, layer_args: dict[str, Any]) -> tuple[nn.Module, tuple[int, ...]]:
    """The layer `cls(**layer_args)` (in_channels from the input size for convolutions), built by its own checks."""
    nd = 1 if cls.__name__.endswith("1d") else 2
    size = _check_input_size(input_size, nd, cls.__name__)
    if issubclass(cls, CONVS):  # (names build only the standard layers)
        for required in ("out_channels", "kernel_size"):
            if required not in layer_args:
                raise ValueError(f"explain: {cls.__name__} needs `{required}`")
        if "in_channels" in layer_args and layer_args["in_channels"] != size[0]:
            raise ValueError(f"explain: `in_channels` (={layer_args['in_channels']}) differs from the input's "
                             f"{size[0]} channels")
        layer_args = {"in_channels": size[0], **layer_args}
    try:
        return cls(**layer_args), size
    except TypeError as e:  # an argument the layer does not take
        raise TypeError(f"explain: {cls.__name__} does not take these arguments: {e}") from e


def explain(layer: str | nn.Module, input_size: Sequence[int], **layer_args: Any) -> LayerExplanation:
    """The worked arithmetic of a convolution or pooling layer on a (C, H, W) (or (C, L)) input.

    `layer` is a module (`nn.Conv2d(3, 96, 11, stride=4)`) or a name with the layer's arguments
    (`explain("conv2d", (3, 227, 227), out_channels=96, kernel_size=11, stride=4)`: in_channels comes
    from the input). Names: conv1d, conv2d, max_pool1d/2d, avg_pool1d/2d. `print()` the result.
    """
    if isinstance(layer, str):
        module, size = _build(_layer_class(layer), input_size, layer_args)
    elif explainable(layer):
        if layer_args:
            raise TypeError(f"explain: layer arguments {sorted(layer_args)} are only for a layer given by name; "
                            f"got a {type(layer).__name__} module")
        module = layer
        size = _check_input_size(input_size, len(_windows(module)[0]), type(layer).__name__)
    else:
        raise TypeError(f"explain: `layer` must be a Conv1d/Conv2d/MaxPool/AvgPool module or a layer name, got "
                        f"{type(layer).__name__}")
    axes = _axes(module, size)
    windows = module_windows(module, size[1:]) or ()
    fields = tuple(INPUT_FIELD.through(w) for w in windows)
    return _explanation(module, type(module).__name__, size, axes, fields, "this layer's input")


def _windows(module: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...], Any, tuple[int, ...]]:
    """(kernel, stride, padding as given, dilation) as per-axis tuples, read from the layer."""
    fn = type(module).__name__
    if is_conv(module):
        return module.kernel_size, module.stride, module.padding, module.dilation
    nd = 1 if fn.endswith("1d") else 2
    kernel, stride, padding, dilation = window_args(fn, nd, module.kernel_size, module.stride, module.padding,
                                                    getattr(module, "dilation", 1))
    return kernel, stride, padding, dilation


def _axes(module: nn.Module, size: tuple[int, ...]) -> tuple[AxisArithmetic, ...]:
    """Per spatial axis: the arithmetic, with the output length from the functional's own rule."""
    fn = type(module).__name__
    kernel, stride, padding, dilation = _windows(module)
    if is_conv(module):
        pads = parse_padding(fn, padding, kernel, stride, dilation)  # 'same' -> (before, after) as the conv does
        ceil_mode = False
    else:
        pads = tuple((p, p) for p in padding)
        ceil_mode = bool(module.ceil_mode)
    names = AXIS_NAMES[len(kernel)]
    axes = []
    for name, n, k, s, (lo, hi), d in zip(names, size[1:], kernel, stride, pads, dilation):
        out = sliding_output_size(n, k, s, (lo, hi), d, ceil_mode)  # the rule every conv and pooling runs
        if out < 1:
            raise ValueError(f"explain: {fn} has no window along the {name}: the dilated kernel ({d * (k - 1) + 1}) "
                             f"is larger than the padded input ({n + lo + hi} = {n} + {lo} + {hi})")
        axes.append(AxisArithmetic(name, n, k, s, lo, hi, d, ceil_mode, out))
    return tuple(axes)


def _explanation(module: nn.Module, name: str, size: tuple[int, ...], axes: tuple[AxisArithmetic, ...],
                 fields: tuple[AxisField, ...], field_of: str) -> LayerExplanation:
    out_channels = getattr(module, "out_channels", size[0])
    output_shape = (out_channels, *(a.output for a in axes))
    macs, unshared = module_costs(module, (1, *size), (1, *output_shape))
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    dtype = weight.dtype if weight is not None else np.dtype(np.float32)
    if is_conv(module):
        mode = getattr(module, "padding_mode", "zeros")
    else:
        mode = "-inf" if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)) else "zeros"
    return LayerExplanation(
        layer=name, type=type(module).__name__, input_shape=size, output_shape=output_shape, axes=axes,
        groups=getattr(module, "groups", 1), padding_mode=mode, padding_arg=module.padding,
        maps_per_filter=_maps_per_filter(module, size[0]),
        weights=weight.numel() if weight is not None else 0, biases=bias.numel() if bias is not None else 0,
        unshared_params=unshared, macs=macs, receptive_field=fields, field_of=field_of, dtype=dtype.name,
        itemsize=dtype.itemsize)


def _maps_per_filter(module: nn.Module, channels: int) -> tuple[int, ...]:
    if not is_conv(module):
        return ()
    table = getattr(module, "connections", None)
    if table is not None:
        return tuple(len(ins) for ins in table)
    return (channels // getattr(module, "groups", 1),) * module.out_channels


def explain_layer(model: nn.Module, name: str, input_size: Sequence[int] | None = None) -> LayerExplanation:
    """The worked arithmetic of layer `name` of `model` (e.g. `explain_layer(alexnet(), "features.0")`).

    One forward pass (`summary`) finds the layer's input shape and its receptive field in the model's input;
    `input_size` defaults to the model's own `input_size`.
    """
    from convolve.inspect.summary import summary

    modules = dict(model.named_modules())
    names = [n for n, m in modules.items() if explainable(m)]
    if not name:
        raise ValueError(f"explain: name a layer of {type(model).__name__}; its convolution and pooling layers: "
                         f"{', '.join(names) or 'none'}")
    if name not in modules or not explainable(modules[name]):
        what = "has no layer" if name not in modules else f"has {type(modules[name]).__name__} (not a conv or pool) at"
        raise ValueError(f"explain: {type(model).__name__} {what} {name!r}; its convolution and pooling layers: "
                         f"{', '.join(names) or 'none'}")
    try:
        rows = [r for r in summary(model, input_size).rows if r.name == name]
    except ValueError as e:
        given = "its native size" if input_size is None else "x".join(map(str, input_size))
        raise ValueError(f"explain: {type(model).__name__} does not run on input {given}: {e}") from e
    if not rows:
        raise ValueError(f"explain: layer {name!r} of {type(model).__name__} is not called in the forward pass")
    row = rows[0]
    module = modules[name]
    size = tuple(row.input_shape[1:])
    axes = _axes(module, size)
    fields = row.receptive_field or ()
    return _explanation(module, name, size, axes, fields, "the model's input")


__all__ = ["AxisArithmetic", "LayerExplanation", "explain", "explain_layer"]
