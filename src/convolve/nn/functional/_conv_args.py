"""Argument normalisation and validation for the convolutions (private helpers of `conv.py`).

Every check raises early with the function name, the argument, what was expected and what was received.
"""

from __future__ import annotations

from typing import Any

from convolve._validate import check_float, check_ndim, check_non_negative, check_not_empty, check_positive, ntuple
from convolve.tensor import Tensor

Pads = tuple[tuple[int, int], ...]  # (before, after) per spatial dimension


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int | str = 0, dilation: int = 1, *,
                     exact: bool = False) -> int:
    """Output length of a convolution along one axis: floor((W + 2P - D(F-1) - 1) / S) + 1 (PyTorch's rule).

    `padding` may also be 'valid' (P = 0) or 'same' (stride 1 only; the output length is `size`). With
    `exact=True`, a setting whose stride does not tile the padded input evenly (the lecture's W=10, F=3, S=2,
    P=0 -> 4.5) raises ValueError instead of being floored.
    """
    fn = "conv_output_size"
    if isinstance(padding, str):
        ((lo, hi),) = parse_padding(fn, padding, (kernel_size,), (stride,), (dilation,))
        return conv_output_size(size + lo + hi, kernel_size, stride, 0, dilation, exact=exact)
    check_positive((int(stride),), "stride", fn)
    check_positive((int(dilation),), "dilation", fn)
    check_positive((int(kernel_size),), "kernel_size", fn)
    check_non_negative((int(padding),), "padding", fn)
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1  # distance the window's first tap may travel
    if span < 0:
        raise ValueError(
            f"{fn}: the dilated kernel ({dilation * (kernel_size - 1) + 1}) is larger than the padded input "
            f"({size + 2 * padding} = {size} + 2 x {padding})"
        )
    if exact and span % stride != 0:
        raise ValueError(
            f"{fn}: (W - F + 2P) / S + 1 = ({size} - {dilation * (kernel_size - 1) + 1} + 2 x {padding}) / {stride}"
            f" + 1 = {span / stride + 1:g} is not an integer: stride {stride} does not tile the input"
        )
    return span // stride + 1


def transposed_output_size(size: int, kernel_size: int, stride: int, padding: int, output_padding: int,
                           dilation: int) -> int:
    """Output length of a transposed convolution: (W-1)S - 2P + D(F-1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


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
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{fn}: `groups` must be a positive int, got {groups!r}")
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


def parse_geometry(fn: str, stride: Any, dilation: Any, nd: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Stride and dilation as positive `nd`-tuples."""
    strides, dilations = ntuple(stride, nd, "stride", fn), ntuple(dilation, nd, "dilation", fn)
    check_positive(strides, "stride", fn)
    check_positive(dilations, "dilation", fn)
    return strides, dilations


def parse_padding(fn: str, padding: Any, kernel: tuple[int, ...], stride: tuple[int, ...],
                  dilation: tuple[int, ...]) -> Pads:
    """`padding` (int, tuple, 'valid' or 'same') as (before, after) per spatial dim.

    'same' follows PyTorch: total D(F-1) split with the extra pixel after (bottom/right) for even kernels;
    it is only defined for stride 1.
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
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    pads = ntuple(padding, nd, "padding", fn)
    check_non_negative(pads, "padding", fn)
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
