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

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np


class _GradMode(threading.local):
    """Grad mode per thread (as PyTorch): a `no_grad()` in the loader's thread leaves the main thread alone."""

    enabled = True


_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether operations currently record a graph (in this thread)."""
    return _mode.enabled


class _GradModeContext:
    """A grad-mode switch usable as a context manager and as a decorator (each call of a decorated function
    enters a fresh switch, so recursion and threads are safe)."""

    mode = False

    def __enter__(self) -> None:
        self._previous = _mode.enabled
        _mode.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _mode.enabled = self._previous

    def _fresh(self) -> _GradModeContext:
        return type(self)()

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradModeContext):  # noqa: N801  (PyTorch's name)
    """Disable graph recording: `with no_grad():`, `@no_grad()` or `@no_grad` (as `torch.no_grad`)."""

    mode = False

    def __new__(cls, orig_func: Callable[..., Any] | None = None) -> Any:
        if orig_func is None:
            return super().__new__(cls)
        if not callable(orig_func):
            raise TypeError(f"{cls.__name__}() takes no arguments, got {orig_func!r}")
        return cls()(orig_func)

    def __init__(self, orig_func: Callable[..., Any] | None = None) -> None:
        pass


class enable_grad(no_grad):  # noqa: N801
    """Re-enable graph recording inside `no_grad()` (context manager or decorator, with or without ())."""

    mode = True


class set_grad_enabled(_GradModeContext):  # noqa: N801
    """Set grad mode to `mode`: at once when called (as `torch.set_grad_enabled(False)`), restored on leaving a
    `with` block; also a decorator."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self._previous = _mode.enabled
        _mode.enabled = self.mode

    def __enter__(self) -> None:
        _mode.enabled = self.mode

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        _mode.enabled = self._previous  # as a decorator it must not change the mode at decoration time
        return super().__call__(func)

    def _fresh(self) -> _GradModeContext:
        return set_grad_enabled(self.mode)


class inference_mode(_GradModeContext):  # noqa: N801
    """`torch.inference_mode`: here the same as `no_grad()` when `mode` is True (there is no separate
    inference-tensor kind); context manager or decorator, with or without ()."""

    def __new__(cls, mode: Any = True) -> Any:
        if callable(mode):
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True) -> None:
        self.mode = not mode

    def _fresh(self) -> _GradModeContext:
        return inference_mode(not self.mode)


class _Tracing(threading.local):
    """Per thread: a callable that `Function.apply` reports each application to, as
    `recorder(cls, inputs, kwargs, result)` (the ONNX exporter's trace); None when nothing listens."""

    recorder: Callable[[type[Function], Sequence[Any], dict[str, Any], Tensor], None] | None = None


tracing = _Tracing()


class Context:
    """What `forward` keeps for `backward`: saved arrays plus any attributes the op sets."""

    saved: tuple[Any, ...]
    needs_input_grad: tuple[bool, ...]

    def __init__(self) -> None:
        self.saved = ()
        self.needs_input_grad = ()

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved = arrays

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        """What `save_for_backward` kept (PyTorch's name)."""
        return self.saved

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
    """Base class of differentiable ops; see the module docstring for the contract.

    convolve's own ops work on NumPy arrays. A Function defined outside convolve (a user's custom op, written as
    for `torch.autograd.Function`) gets Tensors instead: `forward` receives Tensors (and runs without recording a
    graph), `backward` receives the output gradient as a Tensor and may return Tensors, arrays, or a single
    gradient when there is one input. Set the class attribute `tensor_io` to choose explicitly.
    """

    tensor_io: bool | None = None

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
        needs = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
        ctx.needs_input_grad = needs
        if _uses_tensors(cls):
            detached = [Tensor._from_array(t.data) if isinstance(t, Tensor) else t for t in inputs]
            with no_grad():
                y = cls.forward(ctx, *detached, **kwargs)
            out = np.asarray(y.data if isinstance(y, Tensor) else y)
        else:
            out = np.asarray(cls.forward(ctx, *[t.data if isinstance(t, Tensor) else t for t in inputs], **kwargs))
        record = _mode.enabled and any(needs) and out.dtype.kind == "f"
        result = Tensor._from_array(out, requires_grad=record)
        _share_versions(result, inputs)
        if record:
            result._node = Node(cls, ctx, inputs, _watch_saved(ctx, inputs, result))
        if tracing.recorder is not None:
            tracing.recorder(cls, inputs, kwargs, result)
        return result


def _uses_tensors(fn: type[Function]) -> bool:
    """Tensor in/out for Functions defined outside convolve (PyTorch's contract), arrays for convolve's ops and
    for subclasses of them (e.g. a test's variant of an engine kernel)."""
    if fn.tensor_io is not None:
        return fn.tensor_io
    ops = [c for c in fn.__mro__ if c is not Function and isinstance(c, type) and issubclass(c, Function)]
    return not any(c.__module__.startswith("convolve.") for c in ops)


def _call_backward(fn: type[Function], ctx: Context, grad: np.ndarray, n_inputs: int) -> tuple[Any, ...]:
    """Run `fn.backward` and return one array (or None) per input: a lone gradient is accepted for a
    one-input op, Tensors become arrays."""
    result = fn.backward(ctx, Tensor._from_array(grad) if _uses_tensors(fn) else grad)
    if not isinstance(result, tuple | list):
        if n_inputs != 1:
            raise RuntimeError(f"{fn.__name__}.backward returned one gradient for {n_inputs} inputs; return a "
                               "tuple with one gradient (or None) per input of forward")
        result = (result,)
    return tuple(r.data if isinstance(r, Tensor) else r for r in result)


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
    for saved in ctx.saved:
        arr = saved.data if isinstance(saved, Tensor) else saved
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


def run_backward(root: Tensor, grad: Any, retain_graph: bool = False,
                 capture: dict[int, Any] | None = None) -> None:
    """Propagate `grad` (d loss / d root) to every leaf that requires a gradient; leaf grads accumulate.

    Unless `retain_graph`, each node's saved arrays are released once used (as PyTorch), so a graph held by a
    logged loss costs no memory, and a second backward through it is an error rather than a silent reuse.
    Callbacks queued during the pass (`queue_callback`) run at its end, in order.
    With `capture` ({id(tensor): ...}), the gradients of those tensors are added into it instead, and no
    `.grad` is touched (what `grad()` needs).
    """
    _callbacks.depth += 1
    try:
        _propagate(root, grad, retain_graph, capture)
    except BaseException:
        if _callbacks.depth == 1:
            _callbacks.queue.clear()
        raise
    finally:
        _callbacks.depth -= 1
    if _callbacks.depth == 0:
        while _callbacks.queue:
            _callbacks.queue.pop(0)()


def _propagate(root: Tensor, grad: Any, retain_graph: bool, capture: dict[int, Any] | None) -> None:
    """The graph walk of `run_backward`."""
    grads: dict[int, Any] = {id(root): grad}
    for t in _topological_order(root):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        if t._grad_hooks:
            g = run_grad_hooks(t, g)
        if capture is not None and id(t) in capture:
            capture[id(t)] = g if capture[id(t)] is None else capture[id(t)] + g
        node = t._node
        if node is None:  # a leaf
            if capture is None:
                _accumulate(t, g)
            continue
        if t._retains_grad and capture is None:
            _accumulate(t, g)
        if node.ctx is None:
            raise RuntimeError(
                f"{node.fn.__name__}.backward: trying to backward through the graph a second time (its saved "
                "arrays were freed after the first backward); pass retain_graph=True to the first backward call"
            )
        node.check_versions()
        with no_grad():
            input_grads = _call_backward(node.fn, node.ctx, g, len(node.inputs))
        if not retain_graph:
            node.ctx = None
        if len(input_grads) != len(node.inputs):
            raise RuntimeError(
                f"{node.fn.__name__}.backward returned {len(input_grads)} gradients for {len(node.inputs)} inputs "
                "(return one gradient, or None, per input of forward)"
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


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool | None = None) -> tuple[Any, ...]:
    """The gradients of `outputs` with respect to `inputs` (a tuple, one per input), as `torch.autograd.grad`;
    no `.grad` attribute is changed. `grad_outputs` weights each output (required for non-scalar outputs)."""
    if create_graph:
        raise RuntimeError("autograd.grad: create_graph=True (gradients of gradients) is not supported: convolve's "
                           "backward passes run as NumPy code outside the graph")
    outs = list(outputs) if isinstance(outputs, list | tuple) else [outputs]
    ins = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
    weights = list(grad_outputs) if isinstance(grad_outputs, list | tuple) else [grad_outputs] * len(outs)
    for i, t in enumerate(ins):
        if not (isinstance(t, Tensor) and t.requires_grad):
            raise RuntimeError(f"autograd.grad: inputs[{i}] does not require grad")
    capture: dict[int, Any] = {id(t): None for t in ins}
    for k, (out, w) in enumerate(zip(outs, weights)):
        if not (isinstance(out, Tensor) and out.requires_grad):
            raise RuntimeError(f"autograd.grad: outputs[{k}] does not require grad and has no graph")
        if w is None and out.data.size != 1:
            raise RuntimeError(f"autograd.grad: grad_outputs must be given for the non-scalar outputs[{k}] "
                               f"(shape {out.shape})")
        g = np.ones_like(out.data) if w is None else np.asarray(getattr(w, "data", w), dtype=out.data.dtype)
        keep = bool(retain_graph) or k < len(outs) - 1
        run_backward(out, g.reshape(out.data.shape), retain_graph=keep, capture=capture)
    results = []
    for i, t in enumerate(ins):
        if capture[id(t)] is None and not allow_unused:
            raise RuntimeError(f"autograd.grad: inputs[{i}] was not used in the graph of the outputs; pass "
                               "allow_unused=True to get None for it")
        results.append(None if capture[id(t)] is None else Tensor._from_array(np.array(capture[id(t)])))
    return tuple(results)


from convolve._tensor_api import run_grad_hooks  # noqa: E402
from convolve.tensor import Tensor  # noqa: E402  (tensor.py imports this module's names)
