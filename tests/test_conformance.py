"""One conformance battery run over EVERY layer spec of tests/layer_battery.py: output shape vs the documented
formula, gradcheck, parameter count and shapes, repr, state_dict round trip, train/eval, double()/float()."""

from __future__ import annotations

import numpy as np
import pytest

import convolve as cv
import convolve.nn as nn
from convolve.testing import gradcheck
from tests.layer_battery import CV, SPEC_IDS, SPECS, TH, Spec, make_input

each = pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)

_FAMILIES = {  # every public layer class must appear in the battery
    name for name in nn.__all__
    if isinstance(getattr(nn, name), type) and issubclass(getattr(nn, name), nn.Module)
    and name not in {"Module", "Sequential", "ModuleList", "ModuleDict"}
}


def build(spec: Spec, seed: int = 0, dtype=np.float64) -> nn.Module:
    cv.manual_seed(seed)
    return spec.make(CV).to(dtype)


def forward(layer: nn.Module, spec: Spec, x: cv.Tensor, target: np.ndarray | None) -> cv.Tensor:
    return layer(x) if target is None else layer(x, cv.tensor(target))


def test_every_layer_class_is_covered() -> None:
    covered = {type(s.make(CV)).__name__ for s in SPECS}
    assert covered >= _FAMILIES, f"layers missing from the battery: {_FAMILIES - covered}"


@each
def test_output_shape_follows_formula(spec: Spec) -> None:
    layer = build(spec)
    x, target = make_input(spec, np.float64)
    out = forward(layer, spec, cv.tensor(x), target)
    assert out.shape == spec.out_shape and out.dtype == np.float64


@each
def test_gradcheck(spec: Spec) -> None:
    layer = build(spec)
    if spec.random:
        layer.eval()  # the mask would change between the finite-difference evaluations
    x, target = make_input(spec, np.float64)
    params = list(layer.parameters())
    inputs = [cv.tensor(x, requires_grad=True), *params]
    assert gradcheck(lambda xt, *_: forward(layer, spec, xt, target), inputs)


@each
def test_parameter_count_and_shapes_equal_torch(spec: Spec) -> None:
    ours, theirs = build(spec), spec.make(TH)
    shapes = [(n, tuple(p.shape)) for n, p in ours.named_parameters()]
    assert shapes == [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours.parameters())
    assert list(ours.state_dict()) == list(theirs.state_dict())


@each
def test_repr_equals_torch(spec: Spec) -> None:
    assert repr(build(spec)) == repr(spec.make(TH))


@each
def test_state_dict_round_trip_into_fresh_instance(spec: Spec) -> None:
    source = build(spec, seed=0)
    x, target = make_input(spec, np.float64)
    forward(source, spec, cv.tensor(x * 2 + 1), target)  # one training step: batch norm's running stats move
    source.eval()
    fresh = build(spec, seed=1).eval()
    fresh.load_state_dict(source.state_dict())
    a = forward(source, spec, cv.tensor(x), target).numpy()
    b = forward(fresh, spec, cv.tensor(x), target).numpy()
    np.testing.assert_array_equal(a, b)
    for (ka, va), (kb, vb) in zip(source.state_dict().items(), fresh.state_dict().items()):
        assert ka == kb and va.dtype == vb.dtype
        np.testing.assert_array_equal(va.numpy(), vb.numpy())


@each
def test_train_eval_behaviour(spec: Spec) -> None:
    layer = build(spec)
    x, target = make_input(spec, np.float64)
    xt = cv.tensor(x)
    cv.manual_seed(4)
    train_out = forward(layer, spec, xt, target).numpy()
    assert layer.eval() is layer and not layer.training
    eval_out = forward(layer, spec, xt, target).numpy()
    stateful = isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d | nn.SyncBatchNorm) and layer.track_running_stats
    if spec.random:
        np.testing.assert_array_equal(eval_out, x)  # eval: identity
        assert not np.array_equal(train_out, x)  # train: something was dropped (seeded)
    elif stateful:
        assert not np.allclose(train_out, eval_out)  # batch statistics vs running statistics
    else:
        np.testing.assert_array_equal(train_out, eval_out)


@each
def test_double_and_float_conversion(spec: Spec) -> None:
    layer = build(spec, dtype=np.float32)
    x, target = make_input(spec, np.float32)
    assert all(t.dtype == np.float32 for t in [*layer.parameters(), *layer.buffers()] if t.dtype.kind == "f")
    assert forward(layer, spec, cv.tensor(x), target).dtype == np.float32
    assert layer.double() is layer
    assert all(t.dtype == np.float64 for t in [*layer.parameters(), *layer.buffers()] if t.dtype.kind == "f")
    x64, target64 = make_input(spec, np.float64)
    assert forward(layer, spec, cv.tensor(x64), target64).dtype == np.float64
    layer.float()
    assert all(p.dtype == np.float32 for p in layer.parameters())
