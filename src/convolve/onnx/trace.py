"""Record a model's actual forward pass: every `Function` applied, with its inputs, keyword arguments, output
and the module that applied it (the ONNX exporter turns each record into standard operators)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from convolve import autograd
from convolve.autograd import no_grad
from convolve.tensor import Tensor


@dataclass
class Step:
    """One `Function.apply` seen during the forward: `fn.apply(*inputs, **kwargs)` returned `output`."""

    fn: type[autograd.Function]
    inputs: Sequence[Any]
    kwargs: dict[str, Any]
    output: Tensor
    module: str  # qualified name of the innermost module running ('' for the model itself)
    module_type: str  # its class name


@contextlib.contextmanager
def _module_stack(model: Any, stack: list[tuple[str, str]]) -> Iterator[None]:
    """Keep `stack` equal to the (name, class) of the modules currently inside their forward."""
    handles = []
    for name, module in model.named_modules():
        def enter(mod: Any, args: Any, name: str = name) -> None:
            stack.append((name, type(mod).__name__))

        def leave(mod: Any, args: Any, output: Any) -> None:
            stack.pop()

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def trace(model: Any, args: tuple[Tensor, ...]) -> tuple[list[Step], Any]:
    """Run `model(*args)` without gradients, recording every applied Function; returns (steps, output)."""
    steps: list[Step] = []
    stack: list[tuple[str, str]] = []

    def record(fn: type[autograd.Function], inputs: Sequence[Any], kwargs: dict[str, Any], output: Tensor) -> None:
        name, kind = stack[-1] if stack else ("", type(model).__name__)
        steps.append(Step(fn, tuple(inputs), dict(kwargs), output, name, kind))

    if autograd.tracing.recorder is not None:
        raise RuntimeError("onnx.export: a trace is already running in this thread (export is not re-entrant)")
    autograd.tracing.recorder = record
    try:
        with _module_stack(model, stack), no_grad():
            output = model(*args)
    finally:
        autograd.tracing.recorder = None
    return steps, output
