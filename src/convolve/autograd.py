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
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np


class _GradMode(threading.local):
    """Grad mode per thread (as PyTorch): a `no_grad()` in the loader's thread leaves the main thread alone."""

    enabled = True


_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether operations currently record a graph (in this thread)."""
    return _mode.enabled


@contextlib.contextmanager
def _set_grad_enabled(mode: bool) -> Iterator[None]:
    previous = _mode.enabled
    _mode.enabled = mode
    try:
        yield
    finally:
        _mode.enabled = previous


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
    """A recorded application of a Function: its class, context, the input tensors, and the version of every
    tensor whose memory the context saved (so an in-place write after the fact is caught, not silently used)."""

    __slots__ = ("ctx", "fn", "inputs", "watched")

    def __init__(self, fn: type[Function], ctx: Context | None, inputs: Sequence[Any],
                 watched: list[tuple[list[int], int]]) -> None:
        self.fn = fn
        self.ctx = ctx
        self.inputs = inputs
        self.watched = watched

    def check_versions(self) -> None:
        """Raise if a tensor whose array this node saved was modified in place since."""
        for counter, version in self.watched:
            if counter[0] != version:
                raise RuntimeError(
                    f"{self.fn.__name__}.backward: a tensor saved for the gradient was modified by an in-place "
                    f"operation (version {counter[0]}, saved at version {version}); clone it before writing to it"
                )

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
        ctx.needs_input_grad = needs
        out = np.asarray(cls.forward(ctx, *arrays, **kwargs))
        record = _mode.enabled and any(needs) and out.dtype.kind == "f"
        result = Tensor._from_array(out, requires_grad=record)
        _share_versions(result, inputs)
        if record:
            result._node = Node(cls, ctx, inputs, _watch_saved(ctx, inputs, result))
        return result


def _share_versions(result: Tensor, inputs: Sequence[Any]) -> None:
    """An output that shares memory with an input (a view, or an in-place op) shares its version counter;
    an in-place op (output array *is* the input array) bumps it."""
    for t in inputs:
        if isinstance(t, Tensor) and np.may_share_memory(result.data, t.data):
            result._version = t._version
            if result.data is t.data:
                t._version[0] += 1
            return


def _watch_saved(ctx: Context, inputs: Sequence[Any], result: Tensor) -> list[tuple[list[int], int]]:
    """(counter, version) of each input/output tensor whose memory a saved array overlaps."""
    tensors = [t for t in inputs if isinstance(t, Tensor)] + [result]
    watched = []
    for arr in ctx.saved:
        if isinstance(arr, np.ndarray):
            for t in tensors:
                if np.may_share_memory(arr, t.data):
                    watched.append((t._version, t._version[0]))
    return watched


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


def _accumulate(t: Tensor, g: np.ndarray) -> None:
    """Add `g` into `t.grad` (created on first use), in `t`'s dtype."""
    if t.grad is None:
        t.grad = Tensor._from_array(np.array(g, dtype=t.data.dtype, copy=True))
    else:
        t.grad.data += g


class _Callbacks(threading.local):
    """Functions queued by a `backward` during the current backward pass of this thread."""

    def __init__(self) -> None:
        self.queue: list[Callable[[], None]] = []
        self.depth = 0


_callbacks = _Callbacks()


def queue_callback(callback: Callable[[], None]) -> None:
    """Run `callback()` once the backward pass now running in this thread has accumulated every leaf gradient
    (as PyTorch's engine `queue_callback`; DistributedDataParallel averages gradients this way)."""
    if _callbacks.depth == 0:
        raise RuntimeError("queue_callback: can only be called from a Function's backward, during a backward pass")
    _callbacks.queue.append(callback)


def run_backward(root: Tensor, grad: Any, retain_graph: bool = False) -> None:
    """Propagate `grad` (d loss / d root) to every leaf that requires a gradient; leaf grads accumulate.

    Unless `retain_graph`, each node's saved arrays are released once used (as PyTorch), so a graph held by a
    logged loss costs no memory, and a second backward through it is an error rather than a silent reuse.
    Callbacks queued during the pass (`queue_callback`) run at its end, in order.
    """
    _callbacks.depth += 1
    try:
        _propagate(root, grad, retain_graph)
    except BaseException:
        if _callbacks.depth == 1:
            _callbacks.queue.clear()
        raise
    finally:
        _callbacks.depth -= 1
    if _callbacks.depth == 0:
        while _callbacks.queue:
            _callbacks.queue.pop(0)()


def _propagate(root: Tensor, grad: Any, retain_graph: bool) -> None:
    """The graph walk of `run_backward`."""
    grads: dict[int, Any] = {id(root): grad}
    for t in _topological_order(root):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        node = t._node
        if node is None:  # a leaf
            _accumulate(t, g)
            continue
        if t._retains_grad:
            _accumulate(t, g)
        if node.ctx is None:
            raise RuntimeError(
                f"{node.fn.__name__}.backward: trying to backward through the graph a second time (its saved "
                "arrays were freed after the first backward); pass retain_graph=True to the first backward call"
            )
        node.check_versions()
        with no_grad():
            input_grads = node.fn.backward(node.ctx, g)
        if not retain_graph:
            node.ctx = None
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
            if ig.dtype != inp.data.dtype:
                raise RuntimeError(
                    f"{node.fn.__name__}.backward: gradient dtype {ig.dtype} != input dtype {inp.data.dtype}"
                )
            key = id(inp)
            grads[key] = ig if key not in grads else grads[key] + ig


from convolve.tensor import Tensor  # noqa: E402  (tensor.py imports this module's names)
