"""`summary()`: one forward pass with hooks on every leaf layer, recording what each layer actually did.

Per layer (one row per call of a leaf module, in execution order): the output shape it produced, the
shape its arguments claim (`geometry.infer_output_shape`, checked against the real one in the tests),
parameters shared and without sharing, MACs and FLOPs (FLOPs = 2 x MACs; only convolutions and linear
layers count, see `geometry.module_costs`), output memory in bytes, and the receptive field per spatial
axis. Fields follow the tensors: a layer's input field is the field of the tensor it received, found by
walking the autograd graph back to the nearest tensor whose field is known, so concatenations (Inception)
and additions (ResNet) made outside any layer merge their branches' fields (the largest wins).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from convolve import nn
from convolve.autograd import enable_grad
from convolve.inspect.geometry import INPUT_FIELD, AxisField, Window, infer_output_shape, module_costs, module_windows
from convolve.inspect.table import Fields, LayerRow, ModelSummary
from convolve.tensor import Tensor


class _FieldTracker:
    """Receptive fields of tensors by id; unknown ones are derived by walking the autograd graph back."""

    def __init__(self, x: Tensor, nd: int) -> None:
        self.nd, self.rank = nd, x.ndim
        self.known: dict[int, tuple[Fields, tuple[int, ...] | None]] = {}
        self.unknown: set[int] = set()  # ids of tensors already found to have no field
        self.alive: list[Tensor] = []  # keeps recorded tensors alive so that their ids stay unique
        if nd > 0:  # a (N, F) input has no spatial axes: no fields to report
            self.set(x, (INPUT_FIELD,) * nd)

    def spatial(self, t: Tensor) -> tuple[int, ...] | None:
        return tuple(t.shape[-self.nd:]) if t.ndim == self.rank else None

    def set(self, t: Tensor, fields: Fields | None) -> None:
        if fields is not None:
            self.known[id(t)] = (fields, self.spatial(t))
            self.alive.append(t)

    def adapt(self, fields: Fields, src: tuple[int, ...] | None, dst: tuple[int, ...] | None) -> Fields:
        """Fields carried through an op without windows: kept, or covering the map when it is flattened."""
        if src is None or src == dst:
            return fields
        if dst is None:  # flattened / reduced: each output sees the whole map
            return tuple(f.covering(n) for f, n in zip(fields, src))
        return tuple(f.through(Window(1, n / m)) for f, n, m in zip(fields, src, dst))  # resampled by an op

    def field_of(self, t: Tensor) -> tuple[Fields, tuple[int, ...] | None] | None:
        """The (fields, spatial shape) of `t`, merging the fields of the branches that produced it."""
        if id(t) in self.known:
            return self.known[id(t)]
        node = t._node
        if node is None or id(t) in self.unknown:
            return None
        found = [f for f in (self.field_of(p) for p in node.inputs if isinstance(p, Tensor)) if f is not None]
        if not found:  # only parameters and constants upstream (remembered: graphs can be diamonds)
            self.unknown.add(id(t))
            self.alive.append(t)
            return None
        dst = self.spatial(t)
        same = [f for f, s in found if s == dst] or [f for f, _ in found]
        merged = tuple(AxisField.merge(axis) for axis in zip(*same))
        src = dst if any(s == dst for _, s in found) else found[0][1]
        result = (self.adapt(merged, src, dst), dst)
        self.known[id(t)] = result
        self.alive.append(t)
        return result


def _first_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, tuple | list):
        return next((v for v in value if isinstance(v, Tensor)), None)
    return None


class _Recorder:
    """The forward hook: one `LayerRow` per call of a leaf module."""

    def __init__(self, tracker: _FieldTracker) -> None:
        self.tracker = tracker
        self.rows: list[LayerRow] = []
        self.calls: dict[int, int] = {}

    def hook(self, name: str, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        x, y = _first_tensor(inputs), _first_tensor(output)
        if x is None or y is None:
            return
        call = self.calls[id(module)] = self.calls.get(id(module), 0) + 1
        fields = self._fields(module, x, y)
        macs, unshared = module_costs(module, x.shape, y.shape)
        params = list(module.parameters()) if call == 1 else []
        self.rows.append(LayerRow(
            name=name or type(module).__name__, type=type(module).__name__, input_shape=tuple(x.shape),
            output_shape=tuple(y.shape), claimed_shape=infer_output_shape(module, x.shape),
            params=sum(p.numel() for p in params), trainable=sum(p.numel() for p in params if p.requires_grad),
            unshared_params=unshared if call == 1 else 0, macs=macs, flops=2 * macs,
            activation_bytes=y.numel() * y.dtype.itemsize, receptive_field=fields, call=call,
        ))

    def _fields(self, module: nn.Module, x: Tensor, y: Tensor) -> Fields | None:
        tr = self.tracker
        found = tr.field_of(x)
        if found is None:
            return None
        fields, src = found
        windows = module_windows(module, src) if src is not None else None
        if windows is not None:
            fields = tuple(f.through(w) for f, w in zip(fields, windows))
            src = tr.spatial(y)
        fields = tr.adapt(fields, src, tr.spatial(y))
        tr.set(y, fields)
        return fields


def _check_args(model: Any, input_size: Any, batch_size: Any, mode: str) -> tuple[int, ...]:
    fn = "summary"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: `model` must be a convolve.nn.Module, got {type(model).__name__}")
    if input_size is None:
        input_size = getattr(model, "input_size", None)
        if input_size is None:
            raise ValueError(f"{fn}: `input_size` is required: {type(model).__name__} has no `input_size` attribute")
    if not isinstance(input_size, Sequence) or len(input_size) < 1 or not all(
            isinstance(n, int | np.integer) and not isinstance(n, bool) and n > 0 for n in input_size):
        raise ValueError(f"{fn}: `input_size` must be (C, H, W), (C, L) or (F,) positive ints without the batch, "
                         f"got {input_size!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{fn}: `batch_size` must be a positive int, got {batch_size!r}")
    if mode not in ("eval", "train"):
        raise ValueError(f"{fn}: `mode` must be 'eval' or 'train', got {mode!r}")
    return tuple(int(n) for n in input_size)


def _model_dtype(model: nn.Module, dtype: Any) -> np.dtype:
    floats = [p.dtype for p in model.parameters() if p.dtype.kind == "f"]
    own = floats[0] if floats else None
    if dtype is None:
        return own if own is not None else np.dtype(np.float32)
    want = np.dtype(dtype)
    if want.kind != "f":
        raise TypeError(f"summary: `dtype` must be a floating dtype, got {want}")
    if own is not None and want != own:
        raise ValueError(f"summary: `dtype` is {want} but the model's parameters are {own}; "
                         f"convert the model first (model.to({want.name}))")
    return want


def summary(model: nn.Module, input_size: Sequence[int] | None = None, batch_size: int = 1, dtype: Any = None,
            *, mode: str = "eval") -> ModelSummary:
    """Run `model` once on a random (batch_size, *input_size) input and describe every leaf layer.

    `input_size` defaults to the model's `input_size` attribute (zoo models have one); `dtype` defaults to
    the parameters' dtype; `mode` 'eval' (default: aux heads off, BatchNorm on running stats) or 'train'.
    The model's mode is restored afterwards (in 'train' mode BatchNorm updates its running statistics, as in
    any training forward); the returned `output` still carries its graph, so `output.sum().backward()` works.
    """
    size = _check_args(model, input_size, batch_size, mode)
    dt = _model_dtype(model, dtype)
    data = np.random.default_rng(0).standard_normal((batch_size, *size)).astype(dt)
    x = Tensor(data, requires_grad=True)  # so that every op records a node: the graph carries the fields
    recorder = _Recorder(_FieldTracker(x, len(size) - 1))
    handles = [m.register_forward_hook(lambda mod, i, o, n=name: recorder.hook(n, mod, i, o))
               for name, m in model.named_modules() if next(m.children(), None) is None]
    was_training = model.training
    model.train(mode == "train")
    try:
        with enable_grad():  # even inside no_grad(): the fields are carried by the recorded graph
            output = model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    params = list(model.parameters())
    macs = sum(r.macs for r in recorder.rows)
    return ModelSummary(
        model=type(model).__name__, input_shape=tuple(x.shape), dtype=dt.name, rows=recorder.rows,
        total_params=sum(p.numel() for p in params), trainable_params=sum(p.numel() for p in params if p.requires_grad),
        total_macs=macs, total_flops=2 * macs, activation_bytes=sum(r.activation_bytes for r in recorder.rows),
        input_bytes=x.numel() * dt.itemsize, param_bytes=sum(p.numel() * p.dtype.itemsize for p in params),
        output=output,
    )


def print_summary(model: nn.Module, input_size: Sequence[int] | None = None, batch_size: int = 1, dtype: Any = None,
                  *, mode: str = "eval", file: IO[str] | None = None) -> ModelSummary:
    """`summary()`, printed as a table to `file` (stdout by default); returns the summary."""
    result = summary(model, input_size, batch_size, dtype, mode=mode)
    print(result, file=file or sys.stdout)
    return result
