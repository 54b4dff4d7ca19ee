"""`export`: trace a model's forward and write it as an ONNX model of standard operators (torch.onnx.export's
arguments and meaning); weights become initializers named by their state_dict keys."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from convolve.onnx.graph import Emitter, ExportError, Graph
from convolve.onnx.ops import CONVERTERS
from convolve.onnx.trace import Step, trace
from convolve.tensor import Tensor

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Squeeze/Unsqueeze/Slice/ReduceSum with axes as inputs, Softmax over one axis


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("convolve.onnx.export needs the `onnx` package: pip install \"convolve[onnx]\"") from None
    return onnx


def _as_tuple(args: Any) -> tuple[Tensor, ...]:
    """torch's convention: one tensor, or a tuple of positional arguments (arrays are accepted too)."""
    items = args if isinstance(args, tuple | list) else (args,)
    out = []
    for i, a in enumerate(items):
        if isinstance(a, np.ndarray):
            a = Tensor(a)
        if not isinstance(a, Tensor):
            raise TypeError(f"onnx.export: `args` must be a Tensor or a tuple of Tensors, got {type(a).__name__} "
                            f"at position {i}")
        out.append(a)
    return tuple(out)


def _flatten_outputs(output: Any) -> list[Tensor]:
    """The model's output as a flat list of tensors (a tensor, or nested tuples/lists/namedtuples of tensors)."""
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, tuple | list):
        return [t for item in output if item is not None for t in _flatten_outputs(item)]
    raise TypeError(f"onnx.export: the model returned {type(output).__name__}; expected Tensors (or tuples of them)")


def _names(given: Sequence[str] | None, count: int, base: str, what: str) -> list[str]:
    if given is None:
        return [base if count == 1 else f"{base}_{i}" for i in range(count)]
    names = list(given)
    if len(names) != count or len(set(names)) != count:
        raise ValueError(f"onnx.export: `{what}` must be {count} distinct names, got {names}")
    return names


def _dynamic_batch(dynamic_axes: Mapping[str, Any] | None, names: list[str]) -> dict[str, str]:
    """{value name: symbolic name of its axis 0} from torch-style dynamic_axes ({name: [0]} or {name: {0: 'N'}})."""
    result: dict[str, str] = {}
    for name, axes in (dynamic_axes or {}).items():
        if name not in names:
            raise ValueError(f"onnx.export: `dynamic_axes` names {name!r}, which is not an input or output name "
                             f"(names: {', '.join(names)})")
        mapping = dict(axes) if isinstance(axes, Mapping) else {int(a): f"{name}_dynamic_axis_{a}" for a in axes}
        if set(mapping) != {0}:
            raise ValueError(f"onnx.export: `dynamic_axes` for {name!r} is {axes!r}; only axis 0 (the batch axis) can "
                             "be dynamic: the exported shapes of reshapes and slices are those of the trace")
        result[name] = str(mapping[0])
    return result


def _parameter_keys(model: Any) -> dict[int, str]:
    """id(tensor) and id(array) of every parameter and buffer -> its state_dict key (first key if shared)."""
    keys: dict[int, str] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        keys.setdefault(id(tensor), key)
        keys.setdefault(id(tensor.data), key)
    return keys


def _convert(graph: Graph, step: Step) -> None:
    # an engine kernel (GemmConv2d, ChunkedBatchNorm, ...) subclasses its reference Function: convert as that
    converter = next((CONVERTERS[cls] for cls in step.fn.__mro__ if cls in CONVERTERS), None)
    emitter = Emitter(graph, step)
    if converter is None:
        raise emitter.fail("no ONNX converter for this op (see convolve/onnx/ops.py)")
    result = converter(emitter)
    name, batched = result if isinstance(result, tuple) else (result, emitter.any_batched())
    graph.bind(step.output, name)
    if batched:
        graph.batched.add(name)
    for item in step.inputs:  # an in-place op: later uses of its input read the new value
        if isinstance(item, Tensor) and item.data is step.output.data:
            graph.bind(item, name)


def _value_info(helper: Any, name: str, tensor: Tensor, batch: str | None) -> Any:
    from onnx.helper import np_dtype_to_tensor_dtype

    shape: list[Any] = list(tensor.shape)
    if batch is not None:
        shape[0] = batch
    return helper.make_tensor_value_info(name, np_dtype_to_tensor_dtype(tensor.data.dtype), shape)


def build_model(model: Any, args: Any, opset_version: int = DEFAULT_OPSET, input_names: Sequence[str] | None = None,
                output_names: Sequence[str] | None = None, dynamic_axes: Mapping[str, Any] | None = None) -> Any:
    """The `onnx.ModelProto` of `model(*args)` traced in eval mode (the model's mode is restored after)."""
    onnx = _import_onnx()
    if isinstance(opset_version, bool) or not isinstance(opset_version, int) or opset_version < MIN_OPSET:
        raise ValueError(f"onnx.export: `opset_version` must be an int >= {MIN_OPSET}, got {opset_version!r}")
    if opset_version > onnx.defs.onnx_opset_version():
        raise ValueError(f"onnx.export: `opset_version` {opset_version} is newer than the installed onnx supports "
                         f"({onnx.defs.onnx_opset_version()})")
    inputs = _as_tuple(args)
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        steps, output = trace(model, inputs)
    finally:
        model.train(was_training)
    outputs = _flatten_outputs(output)
    in_names = _names(input_names, len(inputs), "input", "input_names")
    out_names = _names(output_names, len(outputs), "output", "output_names")
    dynamic = _dynamic_batch(dynamic_axes, in_names + out_names)
    graph = Graph(onnx.helper, opset_version, _parameter_keys(model))
    graph.taken.update(in_names + out_names)
    for name, tensor in zip(in_names, inputs):
        graph.bind(tensor, name)
        if name in dynamic:
            graph.batched.add(name)
            graph.batch_sizes.add(tensor.shape[0])
    for step in steps:
        _convert(graph, step)
    _name_outputs(graph, outputs, out_names)
    proto = onnx.helper.make_graph(
        graph.nodes, type(model).__name__,
        [_value_info(onnx.helper, n, t, dynamic.get(n)) for n, t in zip(in_names, inputs)],
        [_value_info(onnx.helper, n, t, dynamic.get(n)) for n, t in zip(out_names, outputs)])
    result = onnx.helper.make_model(proto, opset_imports=[onnx.helper.make_opsetid("", opset_version)],
                                    producer_name="convolve")
    graph.write_initializers(result.graph)  # after make_model, which copies the graph
    result.ir_version = min(result.ir_version, 10)  # what onnxruntime 1.x reads
    return result


def _name_outputs(graph: Graph, outputs: list[Tensor], out_names: list[str]) -> None:
    """Give each graph output its public name: an Identity from the traced value (which keeps its own name)."""
    for tensor, name in zip(outputs, out_names):
        if id(tensor) not in graph.names:
            raise ExportError("onnx.export: a model output was not computed by traced operations from the inputs "
                              "(it is a constant or was computed outside autograd); nothing to export for it")
        source = graph.names[id(tensor)]
        graph.nodes.append(graph.helper.make_node("Identity", [source], [name], name=f"{name}_identity"))


def export(model: Any, args: Any, f: str | os.PathLike[str] | io.IOBase, opset_version: int = DEFAULT_OPSET,
           input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
           dynamic_axes: Mapping[str, Any] | None = None) -> None:
    """Trace `model(*args)` and write an ONNX model to `f` (a path or a binary file), as torch.onnx.export.

    The model runs once in eval mode; every applied op becomes standard ONNX operators, parameters and buffers
    become initializers named by their state_dict keys. `dynamic_axes={"input": {0: "batch"}, "output": {0:
    "batch"}}` makes the batch axis symbolic (other axes stay as traced). The result passes
    `onnx.checker.check_model(full_check=True)`. An op with no ONNX form raises `ExportError` naming the module.
    """
    onnx = _import_onnx()
    proto = build_model(model, args, opset_version, input_names, output_names, dynamic_axes)
    serialized = proto.SerializeToString()  # once: the checker and the file share it
    onnx.checker.check_model(serialized, full_check=True)
    if isinstance(f, str | os.PathLike):
        with open(f, "wb") as file:
            file.write(serialized)
    else:
        f.write(serialized)
