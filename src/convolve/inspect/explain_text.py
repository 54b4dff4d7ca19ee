"""The text of a `LayerExplanation`: the formulas with the numbers substituted, in the order a lecture goes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from convolve.inspect.table import human_bytes

if TYPE_CHECKING:
    from convolve.inspect.explain import AxisArithmetic, LayerExplanation


def _x(values: tuple[int, ...] | list[int]) -> str:
    return "x".join(str(v) for v in values)


def _frac(q: object) -> str:
    text = f"{float(q):.4f}".rstrip("0").rstrip(".")  # type: ignore[arg-type]
    return text


def _same(values: list[str]) -> str:
    """'4' when every axis agrees, else '1x7'."""
    return values[0] if len(set(values)) == 1 else "x".join(values)


def _padding(e: LayerExplanation) -> str:
    pads = [str(a.pad_before) if a.pad_before == a.pad_after else f"{a.pad_before} before, {a.pad_after} after"
            for a in e.axes]
    text = _same(pads) if len(set(pads)) == 1 or all(a.pad_before == a.pad_after for a in e.axes) \
        else " / ".join(pads)
    return f"'{e.padding_arg}' ({text})" if isinstance(e.padding_arg, str) else text


def _header(e: LayerExplanation) -> list[str]:
    kernel = _x(e.kernel)
    stride = _same([str(a.stride) for a in e.axes])
    dilation = _same([str(a.dilation) for a in e.axes])
    title = f"{e.type}" + (f" {e.layer}" if e.layer != e.type else "")
    lines = [f"{title}: input {_x(e.input_shape)} -> output {_x(e.output_shape)}"]
    if e.is_conv:
        maps = e.maps_per_filter
        per = f"({min(maps)} to {max(maps)})x{kernel}" if e.partial else f"{maps[0]}x{kernel}"
        grp = f", groups {e.groups} (each filter sees {e.input_shape[0] // e.groups} of {e.input_shape[0]} " \
              f"channels)" if e.groups > 1 else ""
        lines.append(f"  {e.output_shape[0]} filters of {per}, stride {stride}, padding {_padding(e)} with "
                     f"{e.padding_mode}, dilation {dilation}{grp}, {'bias' if e.biases else 'no bias'}")
    else:
        lines.append(f"  {kernel} windows, stride {stride}, padding {_padding(e)} with {e.padding_mode}, dilation "
                     f"{dilation}, ceil_mode={e.axes[0].ceil_mode}")
    return lines


def _axis_key(a: AxisArithmetic) -> tuple[int, ...]:
    return (a.size, a.kernel, a.stride, a.pad_before, a.pad_after, a.dilation, a.output)


def _grouped(axes: tuple[AxisArithmetic, ...]) -> list[tuple[str, AxisArithmetic]]:
    """Axes with identical arithmetic share one line: [('height, width', axis)]."""
    groups: dict[tuple[int, ...], list[AxisArithmetic]] = {}
    for a in axes:
        groups.setdefault(_axis_key(a), []).append(a)
    return [(", ".join(a.name for a in same), same[0]) for same in groups.values()]


def _axis_line(names: str, a: AxisArithmetic) -> str:
    pad = f"2x{a.pad_before}" if a.pad_before == a.pad_after else f"{a.pad_before} + {a.pad_after}"
    top = a.padded - a.effective_kernel
    value = f"{top} / {a.stride} + 1 = " + (str(int(a.quotient)) if a.exact else f"{_frac(a.quotient)}")
    text = f"  {names}: ({a.size} + {pad} - {a.dilation}x({a.kernel}-1) - 1) / {a.stride} + 1 = {value}"
    if not a.exact:
        text += f" -> {'ceil' if a.ceil_mode else 'floor'} -> {a.output}"
    return text


def _not_integer(names: str, a: AxisArithmetic) -> list[str]:
    """What a non-integer (W - F + 2P)/S + 1 means and what PyTorch (and convolve) do with it."""
    lead = [f"  {names}: {_frac(a.quotient)} is not an integer: stride {a.stride} does not tile the "
            f"{a.padded} padded pixels",
            f"    with windows of {a.effective_kernel} (the lecture calls such a setting invalid)."]
    if a.ceil_mode:
        return [*lead, f"    ceil_mode=True rounds up to {a.output} windows: the last one starts at padded pixel "
                       f"{(a.output - 1) * a.stride} and reaches",
                f"    {a.overhang} pixel(s) past the input; those count as missing (max ignores them, average "
                f"divides by the pixels inside)."]
    return [*lead, f"    PyTorch (and convolve) round down to {a.output} windows: the last {a.unused} padded "
                   f"pixel(s) never enter a window,",
            "    so they do not affect the output and receive zero gradient."]


def _output_size(e: LayerExplanation) -> list[str]:
    lines = ["", "Output size per axis: out = floor((W + 2P - D(F-1) - 1) / S) + 1"
                 "   (D = 1: the lecture's (W - F + 2P) / S + 1)"]
    if any(a.ceil_mode for a in e.axes):
        lines[-1] = lines[-1].replace("floor", "ceil")
        lines.append("  (ceil_mode: rounded up, but a window may not start in the right padding)")
    lines += [_axis_line(names, a) for names, a in _grouped(e.axes)]
    for names, a in _grouped(e.axes):
        if not a.exact:
            lines += _not_integer(names, a)
    if any(a.dilation > 1 for a in e.axes):
        spans = ", ".join(f"{a.dilation}x({a.kernel}-1)+1 = {a.effective_kernel}" for _, a in _grouped(e.axes))
        lines.append(f"  dilation spreads the kernel's taps over D(F-1)+1 pixels ({spans}), with the same weights")
    if any(a.pad_before != a.pad_after for a in e.axes):
        lines.append("  'same' with an even span: the extra padding pixel goes after (bottom/right), as in PyTorch")
    if e.is_conv:
        lines.append(f"  depth: {e.output_shape[0]} = the number of filters K")
    else:
        lines.append(f"  depth: {e.output_shape[0]}, unchanged (each channel is pooled on its own)")
    lines.append(f"  -> {' x '.join(str(v) for v in e.output_shape)} = {e.output_elements:,} output values (neurons)")
    return lines


def _parameters(e: LayerExplanation) -> list[str]:
    if not e.is_conv:
        kept = e.output_elements / e.input_elements
        lines = ["", "Parameters: none (the window's rule, max or average, is fixed; nothing is learned)",
                 f"  keeps {e.output_elements:,} of {e.input_elements:,} activations ({kept:.1%}); "
                 f"{1 - kept:.1%} are discarded"]
        overlap = [a for a in e.axes if a.stride < a.effective_kernel]
        if overlap:
            lines.append(f"  overlapping pooling: stride {overlap[0].stride} < window {overlap[0].effective_kernel},"
                         f" neighbouring windows share {overlap[0].effective_kernel - overlap[0].stride} "
                         f"row(s)/column(s) (AlexNet's 3x3 stride 2)")
        return lines
    lines = ["", "Parameters (weight sharing: every position of a feature map uses the same filter)"]
    lines += _partial_filters(e) if e.partial else _filters(e)
    n, positions = e.output_elements, e.output_elements // e.output_shape[0]
    lines += ["  without weight sharing (its own filter for every output neuron, a locally connected layer):",
              (f"    {positions:,} positions x {e.params:,} = " if e.partial else
               f"    {n:,} neurons x {(e.weights_per_filter or 0) + (1 if e.biases else 0):,} = ")
              + f"{e.unshared_params:,} parameters ({e.unshared_params / e.params:,.0f}x as many)",
              f"  a fully connected layer from the {_x(e.input_shape)} input ({e.input_elements:,} values) to the "
              f"{n:,} outputs:",
              f"    ({e.input_elements:,} + 1) x {n:,} = {e.fully_connected_params:,} parameters; the convolution's "
              f"count does not depend on the input size"]
    return lines


def _filters(e: LayerExplanation) -> list[str]:
    per, k = e.weights_per_filter or 0, e.output_shape[0]
    bias = 1 if e.biases else 0
    shape = f"{e.maps_per_filter[0]} x {' x '.join(str(v) for v in e.kernel)}"
    return [f"  per filter: {shape} = {per:,} weights" + (" + 1 bias" if bias else "") + f" = {per + bias:,}",
            f"  {k} filters: {k} x {per:,} = {e.weights:,} weights" + (f" + {e.biases} biases" if bias else "")
            + f" = {e.params:,} parameters"]


def _partial_filters(e: LayerExplanation) -> list[str]:
    """A connection table (LeNet-5's C3): filter o reads only some of the input maps."""
    area, k, c = math.prod(e.kernel), e.output_shape[0], e.input_shape[0]
    lo, hi = min(e.maps_per_filter), max(e.maps_per_filter)
    full = k * c * area + e.biases
    return [f"  a connection table: each filter reads {lo} to {hi} of the {c} input maps, "
            f"{sum(e.maps_per_filter)} (filter, map) pairs in all",
            f"  per filter: {lo} to {hi} maps x {_x(e.kernel)} = {lo * area:,} to {hi * area:,} weights"
            + (" + 1 bias" if e.biases else ""),
            f"  {k} filters: {sum(e.maps_per_filter)} x {area} = {e.weights:,} weights + {e.biases} biases = "
            f"{e.params:,} parameters (reading all {c} maps: {k} x {c * area:,} + {e.biases} = {full:,})"]


def _work(e: LayerExplanation) -> list[str]:
    lines = ["", "Work (one image)"]
    if e.is_conv:
        if e.partial:
            positions = e.output_elements // e.output_shape[0]
            work = f"{positions:,} positions x {e.weights:,} connected weights"
        else:
            work = f"{e.output_elements:,} outputs x {e.weights_per_filter:,} multiply-accumulates"
        lines += [f"  MACs: {work} = {e.macs:,}",
                  f"  FLOPs: 2 x MACs = {e.flops:,} (many tools print MACs and call them FLOPs)"]
        cols, w, prod = e.im2col or ((0, 0), (0, 0), (0, 0))
        groups = f" per group, {e.groups} groups" if e.groups > 1 else ""
        lines.append(f"  im2col: columns {cols[0]:,} x {cols[1]:,}, weights {w[0]:,} x {w[1]:,}, product "
                     f"{prod[0]:,} x {prod[1]:,} (one matrix product{groups})")
        return lines
    taps = e.output_elements * math.prod(e.kernel)
    lines += [f"  {e.output_elements:,} outputs x {_x(e.kernel)} window = {taps:,} values read; no "
              f"multiply-accumulates (MACs 0)"]
    if e.padding_mode == "-inf":
        lines.append("  backward: each output's gradient goes to the arg-max of its window (the 'switches')")
    else:
        per = math.prod(e.kernel)
        lines.append(f"  backward: each output's gradient is spread evenly over its window (1/{per} to each input)")
    return lines


def _field(e: LayerExplanation) -> list[str]:
    if not e.receptive_field:
        return []
    f = e.receptive_field
    size, jump, start = (_x([getattr(a, k) for a in f]) if len({getattr(a, k) for a in f}) > 1
                         else f"{getattr(f[0], k):g}" for k in ("size", "jump", "start"))
    side = "x".join(f"{a.size:g}" for a in f) if len(f) > 1 else f"{f[0].size:g}"
    return ["", f"Receptive field (in {e.field_of}): {side} pixels per output neuron",
            f"  size {size}, neighbouring neurons {jump} pixel(s) apart, the first centred at {start}"]


def _memory(e: LayerExplanation) -> list[str]:
    parts = ", ".join(f"{k} {human_bytes(v)}" for k, v in e.memory().items())
    return ["", f"Memory ({e.dtype}, one image): {parts}"]


def format_explanation(e: LayerExplanation) -> str:
    """All sections: header, output size, parameters, work, receptive field, memory."""
    return "\n".join(_header(e) + _output_size(e) + _parameters(e) + _work(e) + _field(e) + _memory(e))
