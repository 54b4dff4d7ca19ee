"""Define-by-run autograd: the `Function` base class, the context it saves into, grad mode, graph walk.

An op is a subclass of `Function` with two static methods next to each other:

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):            # arrays in, array out
            y = np.exp(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):         # gradient of the output in, one gradient per input out
            (y,) = ctx.saved
            return (grad * y,)

`Exp.apply(tensor)` runs `forward` on the tensors' arrays and, when a gradient is wanted, records a node
so that `Tensor.backward()` can call `backward` in reverse topological order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

_grad_enabled = True


def is_grad_enabled() -> bool:
    """Whether operations currently record a graph."""
    return _grad_enabled


@contextlib.contextmanager
def _set_grad_enabled(mode: bool) -> Iterator[None]:
    global _grad_enabled
    previous = _grad_enabled
    _grad_enabled = mode
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager (and decorator) that disables graph recording, as `torch.no_grad()`."""
    return _set_grad_enabled(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager that re-enables graph recording inside `no_grad()`."""
    return _set_grad_enabled(True)


def set_grad_enabled(mode: bool) -> contextlib.AbstractContextManager[None]:
    """Context manager that sets grad mode to `mode`."""
    return _set_grad_enabled(mode)


class Context:
    """What `forward` keeps for `backward`: saved arrays plus any attributes the op sets."""

    saved: tuple[Any, ...]
    needs_input_grad: tuple[bool, ...]

    def __init__(self) -> None:
        self.saved = ()
        self.needs_input_grad = ()

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved = arrays

    if TYPE_CHECKING:  # ops attach their own fields (ctx.stride = ...); tell the type checker that is fine

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...


class Node:
    """A recorded application of a Function: its class, context and the input tensors."""

    __slots__ = ("ctx", "fn", "inputs")

    def __init__(self, fn: type[Function], ctx: Context, inputs: Sequence[Any]) -> None:
        self.fn = fn
        self.ctx = ctx
        self.inputs = inputs

    def __repr__(self) -> str:
        return f"<{self.fn.__name__}Backward>"


class Function:
    """Base class of differentiable ops; see the module docstring for the contract."""

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any, **kwargs: Any) -> Tensor:
        """Run forward on the inputs' arrays; record a node if any input requires a gradient."""
        ctx = Context()
        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
        needs = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
        record = _grad_enabled and any(needs)
        ctx.needs_input_grad = needs
        out = cls.forward(ctx, *arrays, **kwargs)
        result = Tensor._from_array(out, requires_grad=record)
        if record:
            result._node = Node(cls, ctx, inputs)
        return result


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors reachable from `root` through recorded nodes, each after every tensor that uses it."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        if t._node is not None:
            for inp in t._node.inputs:
                if isinstance(inp, Tensor) and inp.requires_grad and id(inp) not in visited:
                    stack.append((inp, False))
    order.reverse()
    return order


def run_backward(root: Tensor, grad: Any) -> None:
    """Propagate `grad` (d loss / d root) to every leaf that requires a gradient; leaf grads accumulate."""
    grads: dict[int, Any] = {id(root): grad}
    for t in _topological_order(root):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        node = t._node
        if node is None:  # a leaf
            if t.grad is None:
                t.grad = Tensor._from_array(np.array(g, dtype=t.data.dtype, copy=True))
            else:
                t.grad.data = t.grad.data + g
            continue
        if t._retains_grad:
            t.grad = Tensor._from_array(np.array(g, copy=True))
        with no_grad():
            input_grads = node.fn.backward(node.ctx, g)
        if len(input_grads) != len(node.inputs):
            raise RuntimeError(
                f"{node.fn.__name__}.backward returned {len(input_grads)} gradients for {len(node.inputs)} inputs"
            )
        for inp, ig in zip(node.inputs, input_grads):
            if ig is None or not (isinstance(inp, Tensor) and inp.requires_grad):
                continue
            if ig.shape != inp.data.shape:
                raise RuntimeError(
                    f"{node.fn.__name__}.backward: gradient shape {ig.shape} != input shape {inp.data.shape}"
                )
            key = id(inp)
            grads[key] = ig if key not in grads else grads[key] + ig


from convolve.tensor import Tensor  # noqa: E402  (tensor.py imports this module's names)
