"""The ONNX graph under construction: value names, initializers (named by state_dict keys), constants, nodes.

`Emitter` is what one op converter sees: the traced step it converts, its inputs' value names and static
shapes, and `op(...)` / `const(...)` to add nodes and constants under the step's module name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.onnx.trace import Step
from convolve.tensor import Tensor


class ExportError(RuntimeError):
    """An operation of the traced forward that the ONNX exporter cannot express."""


class Graph:
    """Nodes, initializers and the name of every traced tensor; `batched` holds the values whose axis 0 is the
    dynamic batch axis (shape-baking ops refuse to lose it silently)."""

    def __init__(self, helper: Any, opset: int, parameters: dict[int, str]) -> None:
        self.helper, self.opset = helper, opset
        self.parameters = parameters  # id(Tensor or its array) -> state_dict key
        self.nodes: list[Any] = []
        self.initializers: dict[str, np.ndarray] = {}  # name -> value (written into the model proto at the end)
        self.names: dict[int, str] = {}  # id(Tensor) -> value name
        self.keep: list[Any] = []  # the traced tensors, so that their ids stay unique while we map them
        self.batched: set[str] = set()
        self.batch_sizes: set[int] = set()  # traced sizes of the dynamic batch axes
        self.taken: set[str] = set()

    def fresh(self, base: str) -> str:
        """A value or node name not used yet, derived from `base`."""
        name, i = base, 0
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name

    def write_initializers(self, graph_proto: Any) -> None:
        """Add every initializer to `graph_proto` in place (raw little-endian bytes; no intermediate copies)."""
        from onnx.helper import np_dtype_to_tensor_dtype

        for name, array in self.initializers.items():
            proto = graph_proto.initializer.add()
            proto.name = name
            proto.data_type = np_dtype_to_tensor_dtype(array.dtype)
            proto.dims.extend(array.shape)
            proto.raw_data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()

    def bind(self, tensor: Tensor, name: str) -> None:
        self.keep.append(tensor)
        self.names[id(tensor)] = name

    def constant(self, array: np.ndarray, base: str) -> str:
        """An initializer holding `array` (a constant of the graph, not a weight)."""
        name = self.fresh(base)
        self.initializers[name] = np.asarray(array)
        return name

    def value(self, item: Any, base: str) -> str:
        """The value name of a step input: a traced tensor, a parameter/buffer (by state_dict key) or a constant."""
        if isinstance(item, Tensor) and id(item) in self.names:
            return self.names[id(item)]
        array = item.data if isinstance(item, Tensor) else np.asarray(item)
        key = self.parameters.get(id(item)) or self.parameters.get(id(array))
        if key is not None:
            if key not in self.initializers:
                self.taken.add(key)
                self.initializers[key] = array
            return key
        name = self.constant(array, base)
        if isinstance(item, Tensor):
            self.bind(item, name)
        return name


class Emitter:
    """The view of the graph one converter gets while it translates one traced `step`."""

    def __init__(self, graph: Graph, step: Step) -> None:
        self.graph, self.step = graph, step
        self.kw = step.kwargs
        self.prefix = "/" + step.module.replace(".", "/") if step.module else ""
        self.opset = graph.opset

    # ----- the step's inputs and output -------------------------------------------------------------------
    def input(self, i: int) -> str:
        """Value name of positional input `i` (which must not be None)."""
        item = self.step.inputs[i]
        if self._is_batch_constant(item):
            return self._batch_constant(item)
        return self.graph.value(item, f"{self.prefix}/{self.step.fn.__name__}_const")

    def _is_batch_constant(self, item: Any) -> bool:
        """A tensor made in the forward (not traced, not a weight) whose axis 0 has the traced batch size, meeting
        a batched value in this op: e.g. `zeros(n, ...)` concatenated to the input (ResNet's option-A shortcut)."""
        g = self.graph
        return (isinstance(item, Tensor) and id(item) not in g.names and id(item) not in g.parameters
                and id(item.data) not in g.parameters and item.ndim >= 1 and item.shape[0] in g.batch_sizes
                and self.any_batched())

    def _batch_constant(self, item: Tensor) -> str:
        """Its first row, expanded at run time to the batch size of a batched input of this op."""
        rows = item.data
        if not np.array_equal(rows, np.broadcast_to(rows[:1], rows.shape), equal_nan=True):
            raise self.fail(f"a tensor of shape {tuple(rows.shape)} made in the forward has the batch size but "
                            "different rows; it cannot follow a dynamic batch (export without dynamic_axes)")
        ref = next(self.graph.names[id(t)] for t in self.step.inputs
                   if isinstance(t, Tensor) and self.graph.names.get(id(t)) in self.graph.batched)
        batch = self.op("Slice", [self.op("Shape", [ref]), self.ints([0]), self.ints([1])])
        shape = self.op("Concat", [batch, self.ints(rows.shape[1:])], axis=0) if rows.ndim > 1 else batch
        name = self.op("Expand", [self.const(rows[:1], rows.dtype, "batch_constant"), shape])
        self.graph.bind(item, name)
        self.graph.batched.add(name)
        return name

    def has_input(self, i: int) -> bool:
        return i < len(self.step.inputs) and self.step.inputs[i] is not None

    def array(self, i: int) -> np.ndarray:
        item = self.step.inputs[i]
        return item.data if isinstance(item, Tensor) else np.asarray(item)

    def shape(self, i: int = 0) -> tuple[int, ...]:
        return tuple(self.array(i).shape)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.step.output.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.step.output.data.dtype

    def batched(self, i: int = 0) -> bool:
        """Whether input `i`'s axis 0 is the dynamic batch axis."""
        return isinstance(self.step.inputs[i], Tensor) and self.graph.names.get(id(self.step.inputs[i])) in \
            self.graph.batched

    def any_batched(self) -> bool:
        return any(self.batched(i) for i in range(len(self.step.inputs)))

    # ----- building -----------------------------------------------------------------------------------------
    def const(self, values: Any, dtype: Any = None, base: str = "const") -> str:
        """A constant input (e.g. a shape or a scale); float constants take the output's dtype by default."""
        array = np.asarray(values)
        if dtype is not None:
            array = array.astype(dtype)
        elif array.dtype.kind == "f":
            array = array.astype(self.dtype)
        return self.graph.constant(array, f"{self.prefix}/{base}")

    def ints(self, values: Any) -> str:
        """An int64 1-D constant (shapes, axes, pads, slice bounds)."""
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), np.int64, "ints")

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs: Any) -> Any:
        """Add a node; returns its output name (or a list of names when `outputs` > 1)."""
        g = self.graph
        node_name = g.fresh(f"{self.prefix}/{op_type}")
        names = [g.fresh(f"{node_name}_output_{k}") for k in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        g.nodes.append(g.helper.make_node(op_type, inputs, names, name=node_name, **attrs))
        return names[0] if outputs == 1 else names

    def fail(self, reason: str) -> ExportError:
        """The error for an operation this exporter cannot express, naming the module and the op."""
        where = f"module {self.step.module!r} ({self.step.module_type})" if self.step.module else \
            f"the model's own forward ({self.step.module_type})"
        return ExportError(f"onnx.export: cannot export {self.step.fn.__name__} in {where}: {reason}")
