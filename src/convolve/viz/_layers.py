"""Finding layers by name, checking one input image, and recording layer outputs with forward hooks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from convolve import nn
from convolve.tensor import Tensor


def is_conv(module: Any) -> bool:
    """A 2-D convolution: a 4-D `weight` (out, in/groups, kh, kw) or a `dense_weight()` (LeNet's PartialConv2d)."""
    if getattr(module, "transposed", False) or isinstance(module, nn.ConvTranspose2d):
        return False
    if callable(getattr(module, "dense_weight", None)):
        return True
    weight = getattr(module, "weight", None)
    return isinstance(weight, Tensor) and weight.ndim == 4 and hasattr(module, "kernel_size")


def conv_layer_names(model: nn.Module) -> list[str]:
    """Qualified names of the model's 2-D convolution layers, in definition order."""
    return [name for name, m in model.named_modules() if name and is_conv(m)]


def layer_names(model: nn.Module) -> list[str]:
    """Qualified names of every submodule (what `named_modules()` yields, without the model itself)."""
    return [name for name, _ in model.named_modules() if name]


def _choices(names: Sequence[str], limit: int = 40) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def check_model(fn: str, model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: `model` must be a convolve.nn.Module, got {type(model).__name__}")
    return model


def find_layer(fn: str, model: nn.Module, name: Any, conv: bool = False) -> nn.Module:
    """The submodule called `name`; with `conv` it must be a 2-D convolution. Errors list the valid names."""
    check_model(fn, model)
    valid = conv_layer_names(model) if conv else layer_names(model)
    what = "conv layer" if conv else "layer"
    if not isinstance(name, str):
        raise TypeError(f"{fn}: `layer` must be a layer name (str), got {type(name).__name__}; "
                        f"valid {what}s: {_choices(valid)}")
    modules = dict(model.named_modules())
    if name not in modules or not name:
        raise ValueError(f"{fn}: {type(model).__name__} has no layer {name!r}; valid {what}s: {_choices(valid)}")
    module = modules[name]
    if conv and not is_conv(module):
        raise ValueError(f"{fn}: layer {name!r} ({type(module).__name__}) is not a 2-D convolution; "
                         f"valid conv layers: {_choices(valid)}")
    return module


def conv_weight(module: nn.Module) -> np.ndarray:
    """A conv layer's dense (out, in/groups, kh, kw) kernel as a NumPy array (absent connections are zeros)."""
    dense = getattr(module, "dense_weight", None)
    weight = dense() if callable(dense) else module.weight
    return np.asarray(weight.data, dtype=np.float64)


def model_dtype(model: nn.Module) -> np.dtype:
    floats = [p.dtype for p in model.parameters() if p.dtype.kind == "f"]
    return floats[0] if floats else np.dtype(np.float32)


def as_batch(fn: str, x: Any, model: nn.Module) -> np.ndarray:
    """One image (C, H, W) or a batch of one (1, C, H, W), as a (1, C, H, W) array of the model's dtype."""
    arr = np.asarray(x.data if isinstance(x, Tensor) else x)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{fn}: `input` must hold numbers, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[0] != 1:
        raise ValueError(f"{fn}: `input` must be one image (C, H, W) or a batch of one (1, C, H, W), "
                         f"got shape {tuple(arr.shape)}")
    return arr.astype(model_dtype(model))


@contextmanager
def recording(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, Tensor]]:
    """Within the block, the first output of each named layer is stored under its name (hooks removed after)."""
    modules = dict(model.named_modules())
    outputs: dict[str, Tensor] = {}

    def hook_for(name: str) -> Any:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if name not in outputs and isinstance(output, Tensor):
                outputs[name] = output

        return hook

    handles = [modules[n].register_forward_hook(hook_for(n)) for n in names]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode inside the block (dropout off, batch norm on running statistics), restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def class_index(fn: str, target: Any, scores: np.ndarray) -> int:
    """`target` checked against the number of classes, or the predicted class when it is None."""
    n = scores.shape[-1]
    if target is None:
        return int(np.argmax(scores.reshape(-1, n)[0]))
    if isinstance(target, bool) or not isinstance(target, int | np.integer) or not 0 <= target < n:
        raise ValueError(f"{fn}: `target` must be a class index in [0, {n}) or None (the predicted class), "
                         f"got {target!r}")
    return int(target)


@contextmanager
def keep_param_grads(model: nn.Module) -> Iterator[None]:
    """Restore every parameter's `.grad` after the block (attribution backward passes leave no trace)."""
    saved = [(p, p.grad) for p in model.parameters()]
    try:
        yield
    finally:
        for p, g in saved:
            p.grad = g


def run_model(fn: str, model: nn.Module, x: Tensor) -> Any:
    """`model(x)`, with a shape error re-raised as "the image does not fit the model" and its expected size."""
    try:
        return model(x)
    except (ValueError, TypeError, RuntimeError) as e:
        expected = getattr(model, "input_size", None)
        hint = f"; {type(model).__name__} expects (C, H, W) = {tuple(expected)}" if expected is not None else ""
        raise ValueError(f"{fn}: the model cannot run on an input of shape {tuple(x.shape)}{hint} ({e})") from e


ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU)


def executed_leaves(fn: str, model: nn.Module, x: np.ndarray) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(name, module, output shape) of every leaf-layer call of one forward pass, in execution order."""
    from convolve.autograd import no_grad

    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    leaves = [(n, m) for n, m in model.named_modules() if n and next(m.children(), None) is None]
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: calls.append((n, mod, tuple(getattr(o, "shape", ())))))
               for n, m in leaves]
    try:
        with eval_mode(model), no_grad():
            run_model(fn, model, Tensor(x))
    finally:
        for h in handles:
            h.remove()
    return calls


def spatial_conv_names(fn: str, model: nn.Module, x: np.ndarray) -> list[str]:
    """The conv layers whose output maps are larger than 1x1 for input `x`, in call order (a 1x1 map, such as
    LeNet-5's C5, has no spatial pattern to show)."""
    names = [n for n, m, shape in executed_leaves(fn, model, x) if is_conv(m) and len(shape) == 4
             and shape[2] * shape[3] > 1]
    return list(dict.fromkeys(names))


def last_spatial_conv(fn: str, model: nn.Module, x: np.ndarray, activation: bool = False) -> str:
    """The last conv layer whose maps are larger than 1x1 (a 1x1 map has no "where"); with `activation`, the
    activation layer called right after it if there is one (Grad-CAM is usually taken on rectified maps)."""
    calls = executed_leaves(fn, model, x)
    spatial = [i for i, (_, m, shape) in enumerate(calls) if is_conv(m) and len(shape) == 4 and shape[2] * shape[3] > 1]
    if not spatial:
        valid = [n for n, _, shape in calls if len(shape) == 4]
        raise ValueError(f"{fn}: {type(model).__name__} has no conv layer with maps larger than 1x1; pick a layer "
                         f"among: {_choices(valid)}")
    i = spatial[-1]
    if activation and i + 1 < len(calls) and isinstance(calls[i + 1][1], ACTIVATIONS):
        return calls[i + 1][0]
    return calls[i][0]
