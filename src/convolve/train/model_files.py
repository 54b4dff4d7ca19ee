"""From a checkpoint file to a model ready to evaluate: zoo checkpoints written by `convolve train` (they carry the
metadata to rebuild the model), or weights saved with `convolve.save(model.state_dict(), path)` loaded into a
model built by a factory the user names as 'module:function' (the command line's `--model`)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from convolve import io, models
from convolve.nn.module import Module
from convolve.tensor import Tensor
from convolve.train.trainer import LAST

STATE_KEYS = ("model", "state_dict", "model_state_dict")  # where a checkpoint dict commonly keeps the weights
FACTORY_HELP = ("a callable that builds the model, given as 'module:function' (a module importable from the "
                "current folder, or a path/to/file.py), e.g. 'mynets:build_model'")


def import_factory(spec: str) -> Callable[[], Any]:
    """The callable named by 'package.module:function' or 'path/to/file.py:function' (also 'module:Class')."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"model factory {spec!r} must be 'module:function', {FACTORY_HELP}")
    module_name, attr = spec.split(":")
    module = _import(module_name, spec)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"model factory {spec!r}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"model factory {spec!r}: {attr!r} is a {type(target).__name__}, not a callable")
    return target


def _import(module_name: str, spec: str) -> Any:
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise FileNotFoundError(f"model factory {spec!r}: no such file {path}")
        loader_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(loader_spec)  # type: ignore[arg-type]
        loader_spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: modules in the current folder are found
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or not module_name.startswith(e.name):
            raise  # the factory's module exists but imports something missing: keep that error
        raise ModuleNotFoundError(f"model factory {spec!r}: no module named {e.name!r} (looked in the current "
                                  "folder and on sys.path)") from e


def build_from_factory(spec: str) -> Module:
    """Call the factory named by `spec` with no arguments; it must return a convolve `nn.Module`."""
    model = import_factory(spec)()
    if not isinstance(model, Module):
        raise TypeError(f"model factory {spec!r} returned a {type(model).__name__}, expected a convolve nn.Module")
    return model


def state_dict_of(obj: Any, where: str) -> dict[str, np.ndarray]:
    """The weights in a loaded checkpoint: a state_dict itself, or one under 'model' / 'state_dict' /
    'model_state_dict' (as `convolve train` and common PyTorch-style scripts save them)."""
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, Tensor | np.ndarray) for v in obj.values()):
            return {k: np.asarray(getattr(v, "data", v)) for k, v in obj.items()}
        for key in STATE_KEYS:
            if isinstance(obj.get(key), Mapping):
                return state_dict_of(obj[key], where)
    raise ValueError(f"{where} holds no state_dict (a dict of tensors, possibly under one of {list(STATE_KEYS)}); "
                     "save one with convolve.save(model.state_dict(), path)")


def load_model(path: str | os.PathLike[str], factory: str | None = None) -> tuple[Module, dict[str, Any]]:
    """(model in eval mode, metadata) from a checkpoint file or a run folder (its last.npz).

    Without `factory` the checkpoint must come from `convolve train`, whose metadata names the zoo model. With
    `factory` ('module:function'), that callable builds the model and the checkpoint's weights are loaded into
    it (strictly: missing or unexpected keys are an error); zoo metadata, if any, is kept for preprocessing.
    """
    p = Path(path)
    if p.is_dir():
        p = p / LAST
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint file at {p}")
    obj = io.load(p)
    meta = dict(((obj.get("train") or {}).get("meta") or {}) if isinstance(obj, Mapping) else {})
    state = state_dict_of(obj, str(p))
    if factory is not None:
        model = build_from_factory(factory)
        meta["factory"] = factory
    elif "model" in meta:
        model = models.get_model(meta["model"], num_classes=meta["num_classes"], **meta.get("model_options", {}))
    else:
        raise ValueError(f"{p} has no model metadata (it was not written by `convolve train`), so the model to load "
                         f"its weights into is unknown: pass --model module:function ({FACTORY_HELP})")
    model.load_state_dict({k: Tensor(v) for k, v in state.items()})
    model.eval()
    return model, meta


def complete_meta(meta: dict[str, Any], *, dataset: str | None = None, image_shape: Any = None,
                  classes: Any = None, pixel_max: float = 255, mean: Any = None, std: Any = None) -> dict[str, Any]:
    """Preprocessing metadata for a model whose checkpoint has none (a user model): images scaled to [0, 1]
    by `pixel_max`, no padding, normalized by `mean`/`std` when given (else left as they are). A zoo
    checkpoint's metadata is returned unchanged, except for `mean`/`std` given explicitly."""
    if "image_shape" in meta and "mean" in meta:
        out = dict(meta)
        if mean is not None or std is not None:
            out["mean"], out["std"] = _stats(mean, std, len(out["mean"]))
        return out
    channels = image_shape[0] if image_shape is not None else len(mean or std or [0.0])
    mean, std = _stats(mean, std, channels)
    shape = None if image_shape is None else [int(v) for v in image_shape]
    return {**meta, "model": meta.get("factory", "model"), "dataset": dataset, "image_shape": shape,
            "input_size": shape, "pad": 0, "pixel_max": pixel_max, "mean": mean, "std": std,
            "classes": None if classes is None else list(classes),
            "num_classes": None if classes is None else len(classes)}


def _stats(mean: Any, std: Any, channels: int) -> tuple[list[float], list[float]]:
    """Per-channel normalization statistics; one value stands for every channel."""
    mean = [0.0] * channels if mean is None else [float(v) for v in mean]
    std = [1.0] * channels if std is None else [float(v) for v in std]
    if len(mean) != len(std):
        raise ValueError(f"--mean has {len(mean)} values but --std has {len(std)}; give one per channel (or one)")
    if any(s <= 0 for s in std):
        raise ValueError(f"--std values must be positive, got {std}")
    return mean, std
