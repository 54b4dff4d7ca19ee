"""Module backward hooks (`register_full_backward_hook`): identity ops around a module's call catch the
gradients of its outputs and of its tensor inputs, then call `hook(module, grad_input, grad_output)`.

The graph walk hands an identity node its tensor's complete gradient, so the input identity sees d loss / d input
summed over every use inside the module, which is what PyTorch reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convolve.autograd import Context, Function
from convolve.tensor import Tensor


class _HookState:
    """What one call of a hooked module collects during backward."""

    def __init__(self, module: Any, hooks: list[Callable[..., Any]], n_inputs: int, n_outputs: int,
                 waiting: int) -> None:
        self.module, self.hooks = module, hooks
        self.grad_inputs: list[Any] = [None] * n_inputs
        self.grad_outputs: list[Any] = [None] * n_outputs
        self.waiting = waiting  # input gradients still to arrive

    def fire(self) -> tuple[Any, ...]:
        grad_inputs = tuple(self.grad_inputs)
        for hook in self.hooks:
            result = hook(self.module, grad_inputs, tuple(self.grad_outputs))
            if result is not None:
                result = tuple(result) if isinstance(result, tuple | list) else (result,)
                if len(result) != len(grad_inputs):
                    raise RuntimeError(f"backward hook returned {len(result)} gradients for {len(grad_inputs)} "
                                       "inputs")
                grad_inputs = result
        return grad_inputs


class _OutputGrad(Function):
    """Identity on an output; its backward records the output's gradient."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, state: _HookState, index: int) -> np.ndarray:
        ctx.state, ctx.index = state, index
        return x.view()  # a view, not the array itself (which autograd would take for an in-place write)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        state = ctx.state
        state.grad_outputs[ctx.index] = Tensor._from_array(grad)
        if state.waiting == 0 and all(g is not None for g in state.grad_outputs):
            state.fire()  # no input needs a gradient: the hook sees grad_input of Nones
        return (grad,)


class _InputGrad(Function):
    """Identity on a tensor input; its backward records the input's gradient and, last of all, runs the hooks."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, state: _HookState, index: int) -> np.ndarray:
        ctx.state, ctx.index = state, index
        return x.view()  # a view, not the array itself (which autograd would take for an in-place write)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        state = ctx.state
        state.grad_inputs[ctx.index] = Tensor._from_array(grad)
        state.waiting -= 1
        if state.waiting > 0:
            return (grad,)
        replaced = state.fire()
        if len(replaced) > 1 and any(r is not o for r, o in zip(replaced, state.grad_inputs)):
            raise RuntimeError("backward hook: replacing grad_input is supported for single-input modules only")
        new = replaced[ctx.index]
        return (grad if new is None else np.asarray(new.data if isinstance(new, Tensor) else new, grad.dtype),)


def call_with_backward_hooks(module: Any, hooks: list[Callable[..., Any]], forward: Callable[..., Any],
                             args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run `forward(*args, **kwargs)` with identity ops around tensor inputs and outputs that report gradients."""
    positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    needing = [i for i in positions if args[i].requires_grad]
    state = _HookState(module, hooks, len(positions), 0, len(needing))
    wrapped = list(args)
    for slot, i in enumerate(positions):
        if args[i].requires_grad:
            wrapped[i] = _InputGrad.apply(args[i], state=state, index=slot)
    output = forward(*wrapped, **kwargs)
    outputs = output if isinstance(output, tuple | list) else (output,)
    state.grad_outputs = [None] * len(outputs)
    hooked = [_OutputGrad.apply(o, state=state, index=k) if isinstance(o, Tensor) and o.requires_grad else o
              for k, o in enumerate(outputs)]
    return type(output)(hooked) if isinstance(output, tuple | list) else hooked[0]
