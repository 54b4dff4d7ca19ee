"""Tensor methods PyTorch code expects beyond the math: device queries (`.device`, `.cpu()`), `.type()`,
`.contiguous()` and gradient hooks (`.register_hook`). Mixed into `Tensor`."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from convolve._missing import missing
from convolve.device import CPU, check_device, device

_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor", "int64": "LongTensor",
               "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor", "uint8": "ByteTensor",
               "bool": "BoolTensor"}
_DTYPE_OF = {name: dtype for dtype, name in _TYPE_NAMES.items()}
_handle_ids = itertools.count()


class HookHandle:
    """Returned by `register_hook`; `remove()` unregisters the hook."""

    def __init__(self, hooks: dict[int, Any]) -> None:
        self._hooks, self.id = hooks, next(_handle_ids)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)


class TensorAPI:
    """The device/type/layout/hook part of the Tensor interface."""

    data: np.ndarray
    requires_grad: bool
    _grad_hooks: dict[int, Callable[[Any], Any]] | None = None
    is_cuda = False

    @property
    def device(self) -> device:
        """Always the CPU: tensors are NumPy arrays in host memory."""
        return CPU

    def cpu(self) -> Any:
        return self

    def cuda(self, device: Any = None, non_blocking: bool = False) -> Any:
        check_device("cuda" if device is None else device if isinstance(device, str) else f"cuda:{device}",
                     "Tensor.cuda")
        return self

    def contiguous(self, memory_format: Any = None) -> Any:
        """This tensor when its array is C-contiguous, else a contiguous copy (differentiable)."""
        if self.data.flags.c_contiguous:
            return self
        out = self.clone()  # type: ignore[attr-defined]
        out.data = np.ascontiguousarray(out.data)
        return out

    def type(self, dtype: Any = None, non_blocking: bool = False) -> Any:
        """With no argument, the type name ('convolve.FloatTensor'); else the tensor cast to `dtype`."""
        if dtype is None:
            return f"convolve.{_TYPE_NAMES.get(self.data.dtype.name, self.data.dtype.name)}"
        if isinstance(dtype, str) and dtype.rpartition(".")[2] in _DTYPE_OF:
            dtype = _DTYPE_OF[dtype.rpartition(".")[2]]
        return self.to(dtype)  # type: ignore[attr-defined]

    def register_hook(self, hook: Callable[[Any], Any]) -> HookHandle:
        """`hook(grad)` runs when the gradient with respect to this tensor is computed; a Tensor it returns
        replaces that gradient (for this tensor's `.grad` and everything upstream)."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require gradient")
        if not callable(hook):
            raise TypeError(f"register_hook: `hook` must be callable, got {type(hook).__name__}")
        if self._grad_hooks is None:
            self._grad_hooks = {}
        handle = HookHandle(self._grad_hooks)
        self._grad_hooks[handle.id] = hook
        return handle

    def get_device(self) -> int:
        return -1  # PyTorch's answer for a CPU tensor

    def __getattr__(self, name: str) -> Any:
        """Only reached for a name Tensor lacks: say what to do instead of a bare AttributeError."""
        if name.startswith("_"):
            raise AttributeError(f"'Tensor' object has no attribute {name!r}")
        raise missing("'Tensor' object", name, f"Tensor.{name}", "; NumPy works on x.numpy(), outside autograd")


def run_grad_hooks(t: Any, grad: np.ndarray) -> np.ndarray:
    """Apply `t`'s gradient hooks in registration order; each may replace the gradient."""
    for hook in list(t._grad_hooks.values()):
        result = hook(type(t)._from_array(grad))
        if result is not None:
            new = result.data if hasattr(result, "data") else np.asarray(result)
            if new.shape != grad.shape:
                raise RuntimeError(f"register_hook: the hook returned a gradient of shape {new.shape}, expected "
                                   f"{grad.shape}")
            grad = new.astype(grad.dtype, copy=False)
    return grad


__all__ = ["HookHandle", "TensorAPI", "check_device", "run_grad_hooks"]
