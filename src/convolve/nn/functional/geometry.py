"""The one geometry of sliding windows: argument rules, output sizes, 'same' splits, transposed sizes.

Convolutions, poolings, their layers, `convolve.inspect` and the engines all read kernel, stride, padding,
dilation and groups through this module, so one rule holds everywhere: an integer argument may be a Python or
NumPy integer (never a bool), a per-axis argument an int or a tuple of one int per axis. Each check raises early
with the function name, the argument, what was expected and what was received.

Along one axis a window of `kernel` taps, `dilation` apart, slides with `stride` over an input of `size`
padded by (before, after); its output length is

    floor((size + before + after - dilation * (kernel - 1) - 1) / stride) + 1      (ceil with ceil_mode)

and a transposed convolution, its inverse, has (size - 1) * stride - 2 * padding + dilation * (kernel - 1)
+ output_padding + 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve._validate import check_float, check_ndim, check_non_negative, check_not_empty, check_positive, ntuple
from convolve.tensor import Tensor

Pads = tuple[tuple[int, int], ...]  # (before, after) per spatial dimension
Pair = tuple[int, int]


# ----- the integer rules -------------------------------------------------------------------------------------
def is_int(value: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def positive_int(value: Any, name: str, fn: str) -> int:
    """`value` as an int if it is a positive integer (NumPy integers too, bools never), else a ValueError."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{fn}: `{name}` must be a positive int, got {value!r}")
    return int(value)


def int_tuple(value: Any, n: int, name: str, fn: str, minimum: int = 1) -> tuple[int, ...]:
    """An int or a tuple of `n` ints as an `n`-tuple, each >= `minimum` (1: kernel/stride/dilation, 0: padding)."""
    values = ntuple(value, n, name, fn)
    if minimum == 1:
        check_positive(values, name, fn)
    else:
        check_non_negative(values, name, fn)
    return values


# ----- output sizes --------------------------------------------------------------------------------------------
def sliding_output_size(size: int, kernel: int, stride: int = 1, padding: int | Pair = 0, dilation: int = 1,
                        ceil_mode: bool = False) -> int:
    """Windows along one axis (the formula of the module docstring); `padding` is P or (before, after).

    With `ceil_mode` (pooling) the last window must still start inside the input or its left padding, as PyTorch.
    """
    before, after = (padding, padding) if is_int(padding) else padding  # type: ignore[misc]
    span = size + before + after - dilation * (kernel - 1) - 1  # how far the first window may travel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + before:
        out -= 1
    return out


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int | str = 0, dilation: int = 1, *,
                     exact: bool = False) -> int:
    """Output length of a convolution along one axis: floor((W + 2P - D(F-1) - 1) / S) + 1 (PyTorch's rule).

    `padding` may also be 'valid' (P = 0) or 'same' (stride 1 only; the output length is `size`). With
    `exact=True`, a setting whose stride does not tile the padded input evenly (the lecture's W=10, F=3, S=2,
    P=0 -> 4.5) raises ValueError instead of being floored.
    """
    fn = "conv_output_size"
    for name, value in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
        int_tuple(value, 1, name, fn)
    ((lo, hi),) = parse_padding(fn, padding, (int(kernel_size),), (int(stride),), (int(dilation),))
    span = size + lo + hi - dilation * (kernel_size - 1) - 1  # distance the window's first tap may travel
    shown = f"{size} + 2 x {lo}" if lo == hi else f"{size} + {lo} + {hi}"
    if span < 0:
        raise ValueError(f"{fn}: the dilated kernel ({dilation * (kernel_size - 1) + 1}) is larger than the padded "
                         f"input ({size + lo + hi} = {shown})")
    if exact and span % stride != 0:
        raise ValueError(
            f"{fn}: (W - F + 2P) / S + 1 = ({size} - {dilation * (kernel_size - 1) + 1} + 2 x {lo}) / {stride}"
            f" + 1 = {span / stride + 1:g} is not an integer: stride {stride} does not tile the input"
        )
    return sliding_output_size(size, kernel_size, stride, (lo, hi), dilation)


def padded_output_size(padded: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                       dilation: tuple[int, ...]) -> tuple[int, ...]:
    """Output size per axis of a convolution over an input that is already padded."""
    return tuple(sliding_output_size(*args) for args in zip(padded, kernel, stride, (0,) * len(padded), dilation))


def transposed_output_size(size: int, kernel_size: int, stride: int, padding: int, output_padding: int,
                           dilation: int) -> int:
    """Output length of a transposed convolution: (W-1)S - 2P + D(F-1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def same_padding(kernel: tuple[int, ...], dilation: tuple[int, ...]) -> Pads:
    """'same' padding of a stride-1 window, as PyTorch: total D(F-1), the odd pixel after (bottom/right)."""
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple((t // 2, t - t // 2) for t in totals)


# ----- convolution arguments -----------------------------------------------------------------------------------
def parse_geometry(fn: str, stride: Any, dilation: Any, nd: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Stride and dilation as positive `nd`-tuples."""
    return int_tuple(stride, nd, "stride", fn), int_tuple(dilation, nd, "dilation", fn)


def parse_padding(fn: str, padding: Any, kernel: tuple[int, ...], stride: tuple[int, ...],
                  dilation: tuple[int, ...]) -> Pads:
    """`padding` (int, tuple of ints or of (before, after) pairs, 'valid' or 'same') as (before, after) per dim.

    'same' is only defined for stride 1 (see `same_padding`).
    """
    nd = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding != "same":
            raise ValueError(f"{fn}: `padding` must be 'same', 'valid', an int or a tuple of {nd} ints, "
                             f"got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{fn}: padding='same' is not supported for strided convolutions, got stride {stride}")
        return same_padding(kernel, dilation)
    if isinstance(padding, tuple | list) and len(padding) == nd and all(isinstance(p, tuple | list) for p in padding):
        pairs = tuple(int_tuple(tuple(p), 2, "padding", fn, minimum=0) for p in padding)
        return tuple((lo, hi) for lo, hi in pairs)
    pads = int_tuple(padding, nd, "padding", fn, minimum=0)
    return tuple((p, p) for p in pads)


def check_kernel_fits(fn: str, spatial: tuple[int, ...], kernel: tuple[int, ...], pads: Pads,
                      dilation: tuple[int, ...]) -> None:
    """The dilated kernel D(F-1)+1 must not exceed the padded input along any axis."""
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, pads))
    dilated = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(k > p for k, p in zip(dilated, padded)):
        raise ValueError(
            f"{fn}: the (dilated) kernel size {dilated} is larger than the padded input size {padded} "
            f"(input {spatial}, padding {tuple(lo + hi for lo, hi in pads)} in total)"
        )


def transposed_paddings(fn: str, padding: Any, output_padding: Any, strides: tuple[int, ...],
                        dilations: tuple[int, ...], nd: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """`padding` and `output_padding` as non-negative tuples; output_padding < max(stride, dilation) (as PyTorch)."""
    if isinstance(padding, str):
        raise ValueError(f"{fn}: `padding` must be an int or a tuple of {nd} ints (no 'same'/'valid' for transposed"
                         f" convolutions), got {padding!r}")
    pads = int_tuple(padding, nd, "padding", fn, minimum=0)
    out_pads = int_tuple(output_padding, nd, "output_padding", fn, minimum=0)
    if any(op >= max(s, d) for op, s, d in zip(out_pads, strides, dilations)):
        raise ValueError(f"{fn}: `output_padding` {out_pads} must be smaller than either stride {strides} or "
                         f"dilation {dilations} along each axis")
    return pads, out_pads


def check_channels(fn: str, in_channels: int, out_channels: int, groups: Any) -> int:
    """`groups` as a positive int dividing both channel counts (a layer's and a functional's shared rule)."""
    groups = positive_int(groups, "groups", fn)
    if in_channels % groups:
        raise ValueError(f"{fn}: `in_channels` (={in_channels}) must be divisible by `groups` (={groups})")
    if out_channels % groups:
        raise ValueError(f"{fn}: `out_channels` (={out_channels}) must be divisible by `groups` (={groups})")
    return groups


def check_conv_tensors(fn: str, input: Any, weight: Any, bias: Any, groups: Any, nd: int,
                       transposed: bool = False) -> tuple[int, int]:
    """Validate input/weight/bias/groups of a `nd`-D (transposed) convolution; return (in, out) channels."""
    layout = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
    check_float(input, "input", fn)
    check_float(weight, "weight", fn)
    check_ndim(input, (nd + 1, nd + 2), "input", fn, f"{layout} or unbatched {layout.replace('N, ', '')}")
    check_ndim(weight, (nd + 2,), "weight", fn, "(in_channels, out_channels/groups, *kernel)" if transposed
               else "(out_channels, in_channels/groups, *kernel)")
    if weight.dtype != input.dtype:
        raise TypeError(f"{fn}: `input` has dtype {input.dtype} but `weight` has dtype {weight.dtype}; cast one")
    check_not_empty(input, "input", fn)
    check_not_empty(weight, "weight", fn)
    groups = positive_int(groups, "groups", fn)
    channels = input.shape[-nd - 1]
    if channels % groups:
        raise ValueError(f"{fn}: `input` has {channels} channels, which is not divisible by `groups` (={groups})")
    if transposed:
        c_in, c_out = weight.shape[0], weight.shape[1] * groups
        if c_in % groups:
            raise ValueError(f"{fn}: `weight` has {c_in} input channels, not divisible by `groups` (={groups})")
        if channels != c_in:
            raise ValueError(f"{fn}: `input` has {channels} channels but `weight` expects {c_in} (weight.shape[0])")
    else:
        c_in, c_out = weight.shape[1] * groups, weight.shape[0]
        if c_out % groups:
            raise ValueError(f"{fn}: `weight` has {c_out} output channels, not divisible by `groups` (={groups})")
        if channels != c_in:
            raise ValueError(
                f"{fn}: `input` has {channels} channels but `weight` expects {c_in} "
                f"(in_channels/groups = {weight.shape[1]} x groups {groups})"
            )
    _check_bias(fn, bias, c_out, input)
    return c_in, c_out


def _check_bias(fn: str, bias: Any, c_out: int, input: Tensor) -> None:
    if bias is None:
        return
    check_float(bias, "bias", fn)
    if tuple(bias.shape) != (c_out,):
        raise ValueError(f"{fn}: `bias` must have shape ({c_out},) (out_channels), got {tuple(bias.shape)}")
    if bias.dtype != input.dtype:
        raise TypeError(f"{fn}: `bias` has dtype {bias.dtype} but `input` has dtype {input.dtype}")


# ----- pooling arguments ---------------------------------------------------------------------------------------
def _show(values: tuple[int, ...]) -> Any:
    return values[0] if len(values) == 1 else values


def window_args(fn: str, dims: int, kernel_size: Any, stride: Any, padding: Any,
                dilation: Any) -> tuple[tuple[int, ...], ...]:
    """Pooling's kernel, stride (None: the kernel), padding, dilation as `dims`-tuples, checked as PyTorch does.

    PyTorch's pooling rule: padding at most half the kernel size (the undilated one), in layer and functional.
    """
    kernel = int_tuple(kernel_size, dims, "kernel_size", fn)
    strides = kernel if stride is None else int_tuple(stride, dims, "stride", fn)
    pads = int_tuple(padding, dims, "padding", fn, minimum=0)
    dilations = int_tuple(dilation, dims, "dilation", fn)
    if any(p > k // 2 for p, k in zip(pads, kernel)):
        raise ValueError(f"{fn}: `padding` must be at most half of `kernel_size` (padding <= kernel_size // 2), "
                         f"got padding={_show(pads)} and kernel_size={_show(kernel)}")
    return kernel, strides, pads, dilations


def pooled_size(fn: str, input: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...],
                dilation: tuple[int, ...], ceil_mode: bool) -> tuple[int, ...]:
    """Windows per spatial axis; an error in PyTorch's words when an axis would have none."""
    dims = len(kernel)
    sizes = input.shape[-dims:]
    out = tuple(sliding_output_size(*args, ceil_mode) for args in zip(sizes, kernel, stride, padding, dilation))
    if any(o < 1 for o in out):
        channels = input.shape[-dims - 1]
        given, calc = "x".join(map(str, (channels, *sizes))), "x".join(map(str, (channels, *out)))
        raise ValueError(f"{fn}: Given input size: ({given}). Calculated output size: ({calc}). Output size is too "
                         f"small (kernel_size={_show(kernel)}, stride={_show(stride)}, padding={_show(padding)}, "
                         f"dilation={_show(dilation)}, ceil_mode={ceil_mode})")
    return out


def right_padding(size: int, kernel: int, stride: int, padding: int, dilation: int, out: int) -> int:
    """Padding needed after the input so that all `out` windows fit (ceil_mode windows may pass the padding)."""
    needed = (out - 1) * stride + dilation * (kernel - 1) + 1
    return max(needed - size - padding, 0)


def adaptive_output_size(fn: str, output_size: Any, dims: int) -> tuple[int | None, ...]:
    """An adaptive pooling's `output_size` as a `dims`-tuple of positive ints (None keeps that input size, 2-D)."""
    items = output_size if isinstance(output_size, tuple | list) else (output_size,) * dims
    ok = len(items) == dims and all((v is None and dims == 2) or (is_int(v) and v >= 1) for v in items)
    if not ok:
        keep = " (None keeps that input dimension)" if dims == 2 else ""
        raise ValueError(f"{fn}: `output_size` must be a positive int or a tuple of {dims} positive ints{keep}, "
                         f"got {output_size!r}")
    return tuple(None if v is None else int(v) for v in items)


def adaptive_size(fn: str, input: Tensor, output_size: Any, dims: int) -> Pair:
    """output_size as a (oh, ow) pair for this input; None keeps that input dimension."""
    items = adaptive_output_size(fn, output_size, dims)
    out = tuple(int(s if v is None else v) for v, s in zip(items, input.shape[-dims:]))
    return (1, out[0]) if dims == 1 else (out[0], out[1])


def adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive pooling bins along one axis: start = floor(i*L/out), end = ceil((i+1)*L/out). # (out,), (out,)"""
    i = np.arange(out)
    starts = (i * size) // out
    ends = -((-(i + 1) * size) // out)
    return starts, ends
