"""`Optimizer`: the base of every optimizer, with PyTorch's param groups, per-parameter state and state_dict layout.

A subclass sets its hyperparameter defaults and implements `_update(group, param, grad, state)`, which changes
`param.data` in place. The base class walks the groups, skips parameters without a gradient, runs the closure,
and converts the state to and from PyTorch's `{'state': {0: {...}}, 'param_groups': [{..., 'params': [0, 1]}]}`.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from convolve.autograd import enable_grad
from convolve.tensor import Tensor

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class: holds `param_groups` (dicts of tensors plus hyperparameters) and `state` (per tensor)."""

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        self._validate_group(self.defaults)  # bad defaults fail here, even when every group overrides them
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._workspace: dict[int, list[np.ndarray]] = {}
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: `params` must be an iterable of Tensors or of dicts, got a single Tensor")
        if isinstance(params, set):
            raise TypeError(f"{name}: `params` must be an ordered collection (list), got a set whose order varies")
        param_list: list[Any] = list(params)
        if not param_list:
            raise ValueError(f"{name}: got an empty parameter list")
        groups = param_list if isinstance(param_list[0], dict) else [{"params": param_list}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        return "\n".join([*lines, ")"])

    # ----- param groups -------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of tensors with its own options; options it omits take the optimizer's defaults."""
        name = f"{type(self).__name__}.add_param_group"
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: `param_group` must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: `param_group` must have a 'params' entry, got keys {sorted(param_group)}")
        params = param_group["params"]
        if isinstance(params, set):
            raise TypeError(f"{name}: 'params' must be an ordered collection (list), got a set whose order varies")
        group = dict(param_group)
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(group["params"]):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: params[{i}] must be a convolve Tensor, got {type(p).__name__}")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: params[{i}] must be a floating-point tensor, got dtype {p.dtype}")
            if not p.is_leaf:
                raise ValueError(f"{name}: params[{i}] is not a leaf tensor (it was computed by an op)")
        unknown = sorted(set(group) - set(self.defaults) - {"params", "initial_lr", "param_names"})
        if unknown:
            raise ValueError(f"{name}: unknown option(s) {unknown}; the options are {sorted(self.defaults)}")
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._validate_group(group)
        ids = [id(p) for p in group["params"]]
        if len(ids) != len(set(ids)):
            raise ValueError(f"{name}: the group lists the same parameter more than once")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if existing.intersection(ids):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def _validate_group(self, group: dict[str, Any]) -> None:
        """Check a group's hyperparameters (subclasses raise ValueError naming the option)."""

    # ----- stepping -----------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (default, as PyTorch) or to zeros in place."""
        for _, p, grad in self._params_with_grad():
            if set_to_none:
                p.grad = None
            else:
                grad.data[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; `closure` re-evaluates the loss first and is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group, p, grad in self._params_with_grad():
            self._update(group, p, self._grad_array(p, grad), self.state[p])
        return loss

    def _params_with_grad(self) -> Iterator[tuple[dict[str, Any], Tensor, Tensor]]:
        """(group, parameter, its gradient) for every parameter that has a gradient, in group order."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p, p.grad

    def _update(self, group: dict[str, Any], param: Tensor, grad: np.ndarray, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _grad_array(self, p: Tensor, grad: Any) -> np.ndarray:
        g = grad.data if isinstance(grad, Tensor) else np.asarray(grad)
        if g.shape != p.shape:
            raise ValueError(f"{type(self).__name__}.step: a gradient has shape {g.shape}, its parameter {p.shape}")
        return g

    def _work(self, p: Tensor, count: int) -> list[np.ndarray]:
        """`count` scratch arrays shaped like `p`, reused across steps so that updates allocate nothing."""
        bufs = self._workspace.get(id(p), [])
        if len(bufs) < count or bufs[0].shape != p.shape or bufs[0].dtype != p.dtype:
            bufs = [np.empty_like(p.data) for _ in range(count)]
            self._workspace[id(p)] = bufs
        return bufs

    # ----- state_dict ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """PyTorch's layout: parameters replaced by their index in group order; state keyed by that index."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index and s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by `state_dict()` (copied, cast to each parameter's dtype)."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{name}: expected a dict with keys ['param_groups', 'state'], got {got}")
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: the loaded state dict has {len(saved_groups)} parameter groups, "
                f"the optimizer has {len(self.param_groups)}"
            )
        id_map: dict[Any, Tensor] = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            self._check_saved_group(name, i, saved, group)
            id_map.update(zip(saved["params"], group["params"]))
        new_state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for key, values in state_dict["state"].items():
            if key not in id_map:
                raise ValueError(f"{name}: state entry {key!r} names no parameter (parameter ids: {sorted(id_map)})")
            param = id_map[key]
            new_state[param] = {k: _cast_state(name, key, k, v, param) for k, v in values.items()}
        for saved, group in zip(saved_groups, self.param_groups):
            saved["params"] = group["params"]
        self.param_groups = saved_groups
        self.state = new_state

    def _check_saved_group(self, name: str, i: int, saved: Any, group: dict[str, Any]) -> None:
        if not isinstance(saved, dict) or "params" not in saved:
            raise ValueError(f"{name}: param_groups[{i}] must be a dict with a 'params' list")
        if len(saved["params"]) != len(group["params"]):
            raise ValueError(
                f"{name}: the loaded param_groups[{i}] has {len(saved['params'])} parameters, "
                f"the optimizer's group has {len(group['params'])}"
            )
        missing = sorted(set(self.defaults) - set(saved))
        if missing:
            raise ValueError(
                f"{name}: param_groups[{i}] lacks option(s) {missing} of {type(self).__name__} "
                "(was it saved by another optimizer?)"
            )


def _cast_state(name: str, index: Any, key: str, value: Any, param: Tensor) -> Any:
    """Copy a saved state value; arrays become Tensors of the parameter's dtype (except the scalar 'step')."""
    if isinstance(value, Tensor | np.ndarray):
        arr = value.data if isinstance(value, Tensor) else value
        if key == "step":
            return float(arr)
        if arr.shape != param.shape:
            raise ValueError(f"{name}: state[{index}][{key!r}] has shape {arr.shape}, its parameter {param.shape}")
        dtype = param.dtype if arr.dtype.kind == "f" else arr.dtype
        return Tensor(np.array(arr, dtype=dtype, copy=True))
    return copy.deepcopy(value)


def decayed_grad(grad: np.ndarray, param: Tensor, weight_decay: float, maximize: bool, out: np.ndarray,
                 tmp: np.ndarray) -> np.ndarray:
    """PyTorch's update direction (-g if `maximize` else g) + weight_decay * p (L2 decay); `grad` is not modified.

    The result is `grad` itself when there is nothing to add, else it is written to `out`; `tmp` is scratch.
    """
    d = np.negative(grad, out=out) if maximize else grad
    if weight_decay != 0:
        np.multiply(param.data, weight_decay, out=tmp)
        d = np.add(d, tmp, out=out)  # g + wd * p
    return d


def check_range(value: Any, name: str, fn: str, low: float = 0.0, high: float | None = None) -> None:
    """`low <= value` (and `value < high` when given), finite, with PyTorch's checks (NaN refused; inf too)
    but a message naming the option."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"{fn}: `{name}` must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{fn}: `{name}` must be a finite number, got {value}")
    if value < low or (high is not None and value >= high):
        want = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"{fn}: `{name}` must be {want}, got {value}")
