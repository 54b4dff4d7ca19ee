"""Which implementation runs an op: the reference `Function`, or the first kernel of the active engine taking the call.

An engine is a name and an ordered list of kernels. A kernel is a subclass of a reference Function (the same
`apply` arguments, the same gradients) that also says which calls it takes: `supports(*args, **kwargs)` (it
computes this call exactly) and `prefers(*args, **kwargs)` (it was measured faster here than what comes after it).
For a call, the policy walks the active engine's kernels for that reference op and runs the first one that
supports and prefers it; when none does, the reference runs. The "reference" engine has no kernels.

The active engine is per context (thread or task), chosen with `use_engine(name)`; "fast" is the default.
Kernels are named "module:Class" and imported on first use, so this module imports no engine and the reference
ops may import it without a cycle. Adding an engine is one file of kernels plus one `policy.register(...)` line.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["COMPILED_KERNELS", "FAST_KERNELS", "NUMPY_KERNELS", "EnginePolicy", "get_engine", "policy", "use_engine"]


class EnginePolicy:
    """Engines by name, each an ordered list of kernels, and the engine active in the current context."""

    def __init__(self, default: str) -> None:
        self._kernels: dict[str, tuple[str | type, ...]] = {}
        self._loaded: dict[str, tuple[type, ...]] = {}
        self._for_op: dict[tuple[str, type], tuple[type, ...]] = {}  # (engine, reference op) -> its kernels
        self._forced: dict[str, bool] = {}
        self._active: ContextVar[str] = ContextVar("convolve_engine", default=default)

    def register(self, name: str, kernels: Sequence[str | type], *, forced: bool = False) -> None:
        """Add (or replace) engine `name`; `forced=True` runs each kernel on every call it supports (tests)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"register: `name` must be a non-empty str, got {name!r}")
        self._kernels[name] = tuple(kernels)
        self._forced[name] = forced
        self._loaded.pop(name, None)
        self._for_op = {key: kernels for key, kernels in self._for_op.items() if key[0] != name}

    def names(self) -> tuple[str, ...]:
        """Every registered engine name."""
        return tuple(self._kernels)

    def get(self) -> str:
        """The engine active in this context."""
        return self._active.get()

    @contextmanager
    def use(self, name: str) -> Iterator[None]:
        """Run the block with engine `name` active (in this thread or task only)."""
        if name not in self._kernels:
            raise ValueError(f"use_engine: `name` must be one of {sorted(self._kernels)}, got {name!r}")
        token = self._active.set(name)
        try:
            yield
        finally:
            self._active.reset(token)

    def kernels(self, name: str | None = None) -> tuple[type, ...]:
        """The kernel classes of engine `name` (default: the active one), imported on first use."""
        name = self.get() if name is None else name
        if name not in self._loaded:
            self._loaded[name] = tuple(_resolve(k) for k in self._kernels[name])
        return self._loaded[name]

    def select(self, reference: type, *args: Any, **kwargs: Any) -> type:
        """The class that runs `reference.apply(*args, **kwargs)` under the active engine."""
        name = self.get()
        kernels = self._for_op.get((name, reference))
        if kernels is None:
            kernels = self._for_op[(name, reference)] = tuple(k for k in self.kernels(name) if issubclass(k, reference))
        forced = self._forced[name]
        for kernel in kernels:
            if kernel.supports(*args, **kwargs) and (forced or kernel.prefers(*args, **kwargs)):
                return kernel
        return reference

    def apply(self, reference: type, *args: Any, **kwargs: Any) -> Any:
        """Run the op through the selected class: `select(reference, ...).apply(...)`."""
        return self.select(reference, *args, **kwargs).apply(*args, **kwargs)


def _resolve(kernel: str | type) -> type:
    """A kernel class from "package.module:Class" (or the class itself)."""
    if isinstance(kernel, type):
        return kernel
    module, _, cls = kernel.partition(":")
    return getattr(importlib.import_module(module), cls)


# The tuned NumPy kernels, in selection order: the depthwise, whole-window (1x1 output: one GEMM), few-channel/1x1
# and Winograd kernels take the layers they were measured faster on, the channels-last GEMM every other
# convolution (benchmarks/RESULTS.md).
DEPTHWISE_CONV = "convolve.engines.depthwise:DepthwiseConv2d"
WHOLE_WINDOW_CONV = "convolve.engines.whole_window:WholeWindowConv2d"
NUMPY_KERNELS: tuple[str, ...] = (
    DEPTHWISE_CONV,
    WHOLE_WINDOW_CONV,
    "convolve.engines.small_nchw:SmallConv2d",
    "convolve.engines.winograd:WinogradConv2d",
    "convolve.engines.gemm_nhwc:GemmConv2d",
    "convolve.engines.batchnorm:ChunkedBatchNorm",
    "convolve.engines.linear:ThreadAwareLinear",
)

# The compiled (Numba) kernels come first: each takes only large float arrays, when Numba is installed
# (`engines/compiled/`); every other call falls through to the NumPy kernels, then to the reference.
COMPILED_KERNELS: tuple[str, ...] = (
    "convolve.engines.compiled.kernels:CompiledReLU",
    "convolve.engines.compiled.kernels:CompiledTanh",
    "convolve.engines.compiled.kernels:CompiledBatchNorm",
    "convolve.engines.compiled.kernels:CompiledMaxPool2d",
    "convolve.engines.compiled.kernels:CompiledAvgPool2d",
)
# The compiled convolutions go after the depthwise and whole-window kernels and before the few-channel one (which
# would take LeNet's C1 and C3): the direct kernel's `prefers` takes the 16-64-channel 3x3 layers and C3, the row
# kernel's the layers with very few channels (C1), and both leave 1x1 and wide layers to the NumPy ones.
DIRECT_CONV = "convolve.engines.compiled.direct_conv:DirectConv2d"
ROW_CONV = "convolve.engines.compiled.row_conv:RowConv2d"
FAST_KERNELS: tuple[str, ...] = (*COMPILED_KERNELS, DEPTHWISE_CONV, WHOLE_WINDOW_CONV, DIRECT_CONV, ROW_CONV,
                                 *NUMPY_KERNELS[2:])

policy = EnginePolicy(default="fast")
policy.register("reference", ())
policy.register("fast", FAST_KERNELS)
policy.register("numpy", NUMPY_KERNELS)  # "fast" without the compiled loops (also inside the conv kernels)


def use_engine(name: str) -> Any:
    """Context manager: `with convolve.use_engine("reference"): ...` runs every op's plain reference code."""
    return policy.use(name)


def get_engine() -> str:
    """The name of the engine active in this thread: "fast" (default), "numpy" (no compiled loops), "reference",
    or one registered later."""
    return policy.get()
