"""Converters of the tensor ops (activations, arithmetic, reductions, shape ops) to standard ONNX operators.

Ops whose ONNX form bakes a shape (Reshape, Expand, Slice) keep axis 0 symbolic when it is the dynamic batch
axis, and refuse (naming the module) when the traced op would move or consume that axis.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convolve.onnx.convert_nn import _reduce
from convolve.onnx.graph import Emitter

_INT64_MAX = np.iinfo(np.int64).max


def unary(op_type: str, **attrs: Any) -> Any:
    """A converter for an op that is one ONNX node of one input."""
    return lambda e: e.op(op_type, [e.input(0)], **attrs)


def binary(op_type: str) -> Any:
    return lambda e: e.op(op_type, [e.input(0), e.input(1)])


def relu6(e: Emitter) -> str:
    return e.op("Clip", [e.input(0), e.const(0.0), e.const(6.0)])


def leaky_relu(e: Emitter) -> str:
    return e.op("LeakyRelu", [e.input(0)], alpha=float(e.kw.get("negative_slope", 0.01)))


def elu(e: Emitter) -> str:
    return e.op("Elu", [e.input(0)], alpha=float(e.kw.get("alpha", 1.0)))


def silu(e: Emitter) -> str:
    """x * sigmoid(x) (ONNX has no SiLU/Swish operator before opset 24)."""
    return e.op("Mul", [e.input(0), e.op("Sigmoid", [e.input(0)])])


def gelu(e: Emitter) -> str:
    """Gelu from opset 20; before, x/2 (1 + erf(x/sqrt 2)) or the tanh approximation, written out."""
    approximate = e.kw.get("approximate", "none")
    if e.opset >= 20:
        return e.op("Gelu", [e.input(0)], approximate=approximate)
    x = e.input(0)
    if approximate == "tanh":
        cube = e.op("Mul", [e.op("Mul", [x, x]), x])
        inner = e.op("Add", [x, e.op("Mul", [cube, e.const(0.044715)])])
        core = e.op("Tanh", [e.op("Mul", [inner, e.const(math.sqrt(2 / math.pi))])])
    else:
        core = e.op("Erf", [e.op("Mul", [x, e.const(math.sqrt(0.5))])])
    return e.op("Mul", [e.op("Mul", [x, e.const(0.5)]), e.op("Add", [core, e.const(1.0)])])


def softmax(op_type: str) -> Any:
    return lambda e: e.op(op_type, [e.input(0)], axis=int(e.kw["dim"]))


def dropout(e: Emitter) -> str:
    raise e.fail("dropout in training mode (the exporter puts the model in eval mode, where nn.Dropout is the "
                 "identity; a forward calling F.dropout(training=True) cannot be exported)")


def clamp(e: Emitter) -> str:
    lo, hi = e.kw.get("lo"), e.kw.get("hi")
    bounds = ["" if v is None else e.const(np.asarray(v, dtype=e.dtype)) for v in (lo, hi)]
    while bounds and bounds[-1] == "":
        bounds.pop()
    return e.op("Clip", [e.input(0), *bounds])


def where(e: Emitter) -> str:
    """Where; its condition must come from the model's state (comparisons are not traced, so a condition computed
    from the input would be frozen into the graph as a constant)."""
    cond = e.step.inputs[0]
    array = cond.data if hasattr(cond, "data") else cond
    if id(cond) not in e.graph.parameters and id(array) not in e.graph.parameters:
        raise e.fail("a condition computed in the forward (comparisons are not traced and would be frozen as a "
                     "constant); use a parameter or buffer as the mask, or clamp/maximum instead")
    condition = e.graph.value(cond, f"{e.prefix}/condition")
    return e.op("Where", [condition, e.input(1), e.input(2)])


def _axes(e: Emitter) -> list[int]:
    axis, ndim = e.kw.get("axis"), len(e.shape(0))
    if axis is None:
        return list(range(ndim))
    axes = [axis] if isinstance(axis, int | np.integer) else list(axis)
    return sorted(int(a) % ndim for a in axes)


def reduction(op_type: str) -> Any:
    """Sum/Mean/Max over `axis` (None: all) with keepdims; reducing the batch axis ends its dynamic size."""
    def convert(e: Emitter) -> tuple[str, bool]:
        axes = _axes(e)
        y = _reduce(e, op_type, e.input(0), axes, bool(e.kw.get("keepdims", False)))
        return y, e.batched(0) and 0 not in axes
    return convert


def reshape(e: Emitter) -> str:
    """Flatten for (N, *) -> (N, prod(*)) (nn.Flatten), else Reshape to the traced shape; with a dynamic batch,
    axis 0 is copied (0) when the reshape keeps it."""
    shape, out = e.shape(0), list(e.out_shape)
    if len(shape) > 2 and len(out) == 2 and out[0] == shape[0]:
        return e.op("Flatten", [e.input(0)], axis=1)
    if e.batched(0):
        if not out or out[0] != shape[0]:
            raise e.fail(f"a reshape from {shape} to {tuple(out)} merges or moves the dynamic batch axis; "
                         "export without dynamic_axes or keep axis 0 in the model")
        out[0] = 0
    return e.op("Reshape", [e.input(0), e.ints(out)])


def permute(e: Emitter) -> str:
    dims = [int(d) % len(e.shape(0)) for d in e.kw["dims"]]
    if e.batched(0) and dims[0] != 0:
        raise e.fail(f"permute {tuple(dims)} moves the dynamic batch axis; export without dynamic_axes")
    return e.op("Transpose", [e.input(0)], perm=dims)


def broadcast_to(e: Emitter) -> str:
    out = list(e.out_shape)
    if e.batched(0):
        if len(out) != len(e.shape(0)):
            raise e.fail("a broadcast that adds axes in front of the dynamic batch axis")
        out[0] = 1  # Expand keeps the input's (dynamic) batch size against a target of 1
    return e.op("Expand", [e.input(0), e.ints(out)])


def cast(e: Emitter) -> str:
    from onnx.helper import np_dtype_to_tensor_dtype

    return e.op("Cast", [e.input(0)], to=int(np_dtype_to_tensor_dtype(np.dtype(e.dtype))))


def concatenate(e: Emitter) -> tuple[str, bool]:
    axis = int(e.kw.get("axis", 0)) % len(e.shape(0))
    names = [e.input(i) for i in range(len(e.step.inputs))]
    return e.op("Concat", names, axis=axis), e.any_batched() and axis != 0


def stack(e: Emitter) -> tuple[str, bool]:
    axis = int(e.kw.get("axis", 0)) % (len(e.shape(0)) + 1)
    names = [e.op("Unsqueeze", [e.input(i), e.ints([axis])]) for i in range(len(e.step.inputs))]
    return e.op("Concat", names, axis=axis), e.any_batched() and axis != 0


def _full_index(index: Any, ndim: int) -> list[Any]:
    """The index as one entry per input axis (plus the None entries), `...` and the missing tail as slice(None)."""
    parts = list(index) if isinstance(index, tuple) else [index]
    named = sum(p is not None and p is not Ellipsis for p in parts)
    if Ellipsis in parts:
        at = parts.index(Ellipsis)
        parts = parts[:at] + [slice(None)] * (ndim - named) + parts[at + 1:]
    return parts + [slice(None)] * (ndim - sum(p is not None for p in parts))


def getitem(e: Emitter) -> tuple[str, bool]:
    """Basic indexing (ints, slices, None, ...) -> Slice, Squeeze, Unsqueeze; arrays of indices are refused."""
    index, shape = e.kw["index"], e.shape(0)
    parts = _full_index(index, len(shape))
    if not all(isinstance(p, int | np.integer | slice) or p is None for p in parts):
        raise e.fail("advanced indexing (index arrays or masks); only ints, slices, None and ... are exported")
    bounds: list[tuple[int, int, int, int]] = []  # (start, stop, axis, step)
    drop: list[int] = []
    for axis, p in enumerate(p for p in parts if p is not None):
        if p == slice(None):
            continue
        if axis == 0 and e.batched(0):
            raise e.fail(f"indexing {p!r} along the dynamic batch axis; export without dynamic_axes")
        if isinstance(p, slice):
            start, stop, step = p.indices(shape[axis])
            bounds.append((start, stop if stop >= 0 else -_INT64_MAX, axis, step))  # stop < 0: run to the front
        else:
            bounds.append((int(p) % shape[axis], int(p) % shape[axis] + 1, axis, 1))
            drop.append(axis)
    y = e.input(0)
    if bounds:
        y = e.op("Slice", [y, *(e.ints([b[k] for b in bounds]) for k in (0, 1, 2, 3))])
    if drop:
        y = e.op("Squeeze", [y, e.ints(drop)])
    kept = [p for p in parts if not isinstance(p, int | np.integer)]  # the output's axes, None included
    new_axes = [i for i, p in enumerate(kept) if p is None]
    if new_axes:
        y = e.op("Unsqueeze", [y, e.ints(new_axes)])
    return y, e.batched(0) and (not new_axes or new_axes[0] != 0)
