"""`Module`: the base class of layers and models: registration, traversal, modes, dtype, state_dict, hooks."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from convolve.autograd import no_grad
from convolve.device import check_device, parse_to
from convolve.nn._backward_hooks import call_with_backward_hooks
from convolve.nn.parameter import Parameter
from convolve.tensor import Tensor


class _IncompatibleKeys(NamedTuple):
    """What `load_state_dict` returns (PyTorch's namedtuple): keys the module lacked / did not expect."""

    missing_keys: list[str]
    unexpected_keys: list[str]

_hook_ids = itertools.count()


class RemovableHandle:
    """Returned by `register_forward_hook`; `.remove()` unregisters the hook (also usable as a context manager)."""

    def __init__(self, hooks: dict[int, Callable[..., Any]]) -> None:
        self._hooks = hooks
        self.id = next(_hook_ids)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _addindent(text: str, spaces: int) -> str:
    """Indent every line of `text` but the first (for nested reprs)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _to_array(value: Any, key: str) -> np.ndarray:
    """A state_dict value as an ndarray: a Tensor, a NumPy array or anything `np.asarray` accepts."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and not isinstance(value, np.ndarray):
        value = value.detach()  # e.g. a torch tensor that requires grad
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise TypeError(f"load_state_dict: value for `{key}` cannot be converted to an array ({exc})") from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"load_state_dict: value for `{key}` must be numeric, got dtype {arr.dtype}")
    return arr


class Module:
    """Base class of every layer and model (as `torch.nn.Module`); subclasses define `forward`.

    Assigning a `Parameter`, a `Module` or (after `register_buffer`) a Tensor to an attribute registers it,
    in definition order, which is the order of `parameters()` and of the `state_dict()` keys.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the forward pre-hooks, `forward`, then the forward hooks (which may replace the output)."""
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        backward_hooks = list(self.__dict__.get("_backward_hooks", {}).values())
        if backward_hooks:
            output = call_with_backward_hooks(self, backward_hooks, self.forward, args, kwargs)
        else:
            output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    # ----- registration -------------------------------------------------------------------------------
    def _check_init(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call (call super().__init__())")

    @staticmethod
    def _check_name(name: Any, fn: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{fn}: `name` must be a string, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(f'{fn}: `name` must be non-empty and contain no ".", got {name!r}')

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register `param` (or None, a declared-but-absent parameter such as `bias=False`) under `name`."""
        self._check_init("parameters")
        self._check_name(name, "register_parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"register_parameter: attribute {name!r} already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter: cannot assign {type(param).__name__} as parameter {name!r} "
                "(convolve.nn.Parameter or None expected)"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a non-learnable state tensor (e.g. running_mean); persistent buffers go into state_dict."""
        self._check_init("buffers")
        self._check_name(name, "register_buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"register_buffer: attribute {name!r} already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: cannot assign {type(tensor).__name__} as buffer {name!r} "
                            "(convolve Tensor or None expected)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a child module under `name`."""
        self._check_init("submodules")
        self._check_name(name, "add_module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module subclass")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"add_module: attribute {name!r} already exists")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        params, buffers, modules = (self.__dict__.get(k) for k in ("_parameters", "_buffers", "_modules"))
        if isinstance(value, Parameter):
            self._check_init("parameters")
            self._remove_from(name, self.__dict__, buffers, modules)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(convolve.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            self._check_init("submodules")
            self._remove_from(name, self.__dict__, params, buffers)
            modules[name] = value  # type: ignore[index]
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} (Module or None)")
            modules[name] = None
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} (Tensor or None)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    @staticmethod
    def _remove_from(name: str, *dicts: Any) -> None:
        for d in dicts:
            if d is not None and name in d:
                del d[name]

    def __getattr__(self, name: str) -> Any:
        for store in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(store)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__[store]
            if name in d:
                del d[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    # ----- traversal ----------------------------------------------------------------------------------
    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """(qualified name, module) for self and every descendant, depth first; shared modules once."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[tuple[str, Tensor]]:
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        seen: set[int] = set()
        for mod_prefix, module in modules:
            for name, t in getattr(module, store).items():
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(qualified name, parameter) in definition order; a shared parameter is listed once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)  # type: ignore[misc]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The descendant named by a dotted path such as 'features.0'."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"get_submodule: {type(module).__name__} has no submodule {part!r} ({target!r})")
            module = child
        return module

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call `fn` on every child (recursively) and then on self, e.g. for custom initialization."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ----- modes and gradients ------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active, batch norm uses batch statistics) on self and descendants."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: `mode` must be a bool, got {mode!r}")
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: `train(False)`."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's `.grad`: to None (default, as PyTorch 2) or to zeros."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.data = np.zeros_like(p.grad.data)

    # ----- dtype --------------------------------------------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Convert floating parameters and buffers (and their grads) in place, as `.to(dtype)`; a device argument
        must be the CPU ('cpu', `device('cpu')`), the only device convolve has."""
        target = parse_to("Module.to", args, kwargs)
        if target is None:
            return self
        if target.kind != "f":
            raise TypeError(f"Module.to: only floating dtypes are accepted, got {target}")
        for t in itertools.chain(self.parameters(), self.buffers()):
            if t.data.dtype.kind == "f":
                t.data = t.data.astype(target)
                if t.grad is not None:
                    t.grad.data = t.grad.data.astype(target)
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    def half(self) -> Module:
        return self.to(np.float16)

    def cpu(self) -> Module:
        return self

    def cuda(self, device: Any = None) -> Module:
        check_device("cuda" if device is None else device if isinstance(device, str) else f"cuda:{device}",
                     "Module.cuda")
        return self

    # ----- hooks --------------------------------------------------------------------------------------
    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """`hook(module, inputs_tuple, output)` runs after forward; a non-None return replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_full_backward_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """`hook(module, grad_input, grad_output)` runs once the gradients with respect to the module's tensor
        inputs are computed (tuples, None for inputs that need none); a returned tuple replaces grad_input."""
        handle = RemovableHandle(self._backward_hooks)
        self._backward_hooks[handle.id] = hook
        if prepend:
            self._backward_hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """`hook(module, inputs_tuple)` runs before forward; a non-None return replaces the inputs."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # ----- state_dict ---------------------------------------------------------------------------------
    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(key, live tensor) for every parameter and persistent buffer, in PyTorch's key order."""
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                yield prefix + name, b
        for name, child in self._modules.items():
            if child is not None:
                yield from child._state_items(f"{prefix}{name}.")

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by qualified name (PyTorch's keys); values share memory, detached."""
        return OrderedDict((k, t if keep_vars else t.detach()) for k, t in self._state_items(prefix))

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        """Copy values into parameters and buffers; every key and shape is checked before anything is copied.

        Values may be Tensors, NumPy arrays or anything `np.asarray` accepts (e.g. torch tensors). Raises
        RuntimeError listing missing/unexpected keys (strict) and shape mismatches (always); returns
        `(missing_keys, unexpected_keys)` as PyTorch.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: `state_dict` must be a mapping, got {type(state_dict).__name__}")
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        arrays = {k: _to_array(v, k) for k, v in state_dict.items() if k in own}
        errors = [
            f"size mismatch for {k}: copying a param with shape {tuple(a.shape)} from checkpoint, "
            f"the shape in current model is {tuple(own[k].shape)}."
            for k, a in arrays.items() if tuple(a.shape) != tuple(own[k].shape)
        ]
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        with no_grad():
            for k, arr in arrays.items():
                own[k].data[...] = arr.astype(own[k].data.dtype, copy=False)
        return _IncompatibleKeys(missing, unexpected)

    # ----- repr ---------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The arguments shown inside the parentheses of this module's repr; layers override it."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        lines += [f"({name}): " + _addindent(repr(child), 2) for name, child in self._modules.items()]
        main = self._get_name() + "("
        if lines:
            main += ("\n  " + "\n  ".join(lines) + "\n") if len(lines) > 1 or self._modules else lines[0]
        return main + ")"

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))
