"""The model registry: each zoo builder registers its name, native input size and default class count."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

Builder = TypeVar("Builder", bound=Callable[..., Any])


@dataclass(frozen=True)
class ModelSpec:
    """What a caller needs to know to build and feed a zoo model."""

    name: str
    builder: Callable[..., Any]
    input_size: tuple[int, int, int]  # (C, H, W) the model was designed for
    num_classes: int  # default number of outputs
    family: str  # lenet, alexnet, vgg, ... (for grouping in listings)
    description: str  # one line, from the builder's docstring

    @property
    def options(self) -> tuple[str, ...]:
        """The keyword options the builder accepts (besides `num_classes`)."""
        params = inspect.signature(self.builder).parameters
        return tuple(p for p in params if p != "num_classes")


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(input_size: tuple[int, int, int], num_classes: int, family: str) -> Callable[[Builder], Builder]:
    """Decorator: record the builder under its function name; the built model gets `.input_size`."""

    def wrap(builder: Builder) -> Builder:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"register_model: a model named {name!r} is already registered")

        @functools.wraps(builder)
        def build(*args: Any, **kwargs: Any) -> Any:
            model = builder(*args, **kwargs)
            if getattr(model, "input_size", None) is None:
                model.input_size = input_size
            model.register_forward_pre_hook(functools.partial(_check_input, name, tuple(model.input_size),
                                                              not _has_adaptive_pool(model)))
            return model

        doc = (builder.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelSpec(name, build, tuple(input_size), num_classes, family, doc[0] if doc else "")  # type: ignore[arg-type]
        return build  # type: ignore[return-value]

    return wrap


def _has_adaptive_pool(model: Any) -> bool:
    """Whether the classifier's input size is fixed by an adaptive pooling layer (then any input size large
    enough works); without one, the flattened features must match the first Linear layer: only the native size."""
    return any(type(m).__name__.startswith("Adaptive") for m in model.modules())


def _check_input(name: str, native: tuple[int, int, int], fixed_size: bool, model: Any,
                 inputs: tuple[Any, ...]) -> None:
    """Forward pre-hook of zoo models: the input must be (N, C, H, W) with the model's channels (and, for models
    without adaptive pooling, its native H x W), checked before any layer runs."""
    if not inputs or not hasattr(inputs[0], "shape"):
        return
    shape = tuple(inputs[0].shape)
    c, h, w = native
    size_ok = not fixed_size or shape[2:] == (h, w)
    if len(shape) == 4 and shape[1] == c and size_ok:
        return
    want = f"(N, {c}, {h}, {w})" if fixed_size else f"(N, {c}, H, W)"
    raise ValueError(f"{name}: expects input {want} (native size {c}x{h}x{w}), got shape {shape}"
                     + ("; pad or resize the images to the native size" if len(shape) == 4 and shape[1] == c else ""))


def list_models(family: str | None = None) -> list[str]:
    """Names of the registered models (sorted), optionally only those of one `family`."""
    return sorted(n for n, s in _REGISTRY.items() if family is None or s.family == family)


def model_spec(name: str) -> ModelSpec:
    """The registry entry of `name` (input size, default classes, options); ValueError listing valid names."""
    if not isinstance(name, str):
        raise TypeError(f"model_spec: `name` must be a str, got {type(name).__name__}")
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _REGISTRY[key]


def get_model(name: str, num_classes: int | None = None, **options: Any) -> Any:
    """Build zoo model `name` with `num_classes` outputs (default: its registry default) and its `options`."""
    spec = model_spec(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise TypeError(f"get_model: model {spec.name!r} has no option {', '.join(map(repr, unknown))}; "
                        f"valid options: {valid}")
    if num_classes is None:
        num_classes = spec.num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"get_model: `num_classes` must be a positive int, got {num_classes!r}")
    return spec.builder(num_classes=num_classes, **options)
