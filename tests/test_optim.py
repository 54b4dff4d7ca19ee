"""Optimizers vs PyTorch: identical params and gradient sequences give identical trajectories (float64, rtol 1e-10);
param groups, state_dict layout and round trip, zero_grad, closure, dtype and in-place updates, bad input."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
from convolve import optim

SHAPES = [(3, 4), (5,), (2, 3, 2)]
TORCH = {optim.SGD: torch.optim.SGD, optim.Adam: torch.optim.Adam, optim.AdamW: torch.optim.AdamW,
         optim.RMSprop: torch.optim.RMSprop}  # fmt: skip
RTOL = 1e-10

CONFIGS = [
    (optim.SGD, {"lr": 0.1}),
    (optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (optim.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    (optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    (optim.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01, "nesterov": True, "maximize": True}),
    (optim.SGD, {"lr": 0.1, "weight_decay": 0.1, "maximize": True}),
    (optim.SGD, {"lr": 0.1, "maximize": True}),
    (optim.SGD, {"lr": 0.1, "momentum": 0.5, "dampening": 0.5, "weight_decay": 0.05}),
    (optim.Adam, {}),
    (optim.Adam, {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6}),
    (optim.Adam, {"lr": 0.05, "betas": (0.3, 0.7)}),  # lerp weight >= 0.5 takes PyTorch's other branch
    (optim.Adam, {"lr": 0.02, "weight_decay": 0.1, "amsgrad": True}),
    (optim.Adam, {"lr": 0.02, "amsgrad": True, "maximize": True}),
    (optim.Adam, {"lr": 0.02, "weight_decay": 0.1, "maximize": True}),
    (optim.AdamW, {}),
    (optim.AdamW, {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True, "maximize": True}),
    (optim.RMSprop, {}),
    (optim.RMSprop, {"lr": 0.01, "alpha": 0.9, "centered": True}),
    (optim.RMSprop, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}),
    (optim.RMSprop, {"lr": 0.01, "momentum": 0.5, "centered": True, "maximize": True, "eps": 1e-4}),
]


def _arrays(seed: int, dtype: Any = np.float64) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _pair(cls: type, groups: Callable[[list[Any]], Any], kwargs: dict[str, Any], dtype: Any = np.float64):
    """The same parameters as convolve and torch tensors, and an optimizer over each."""
    init = _arrays(0, dtype)
    ours = [cv.tensor(a, requires_grad=True) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    return ours, theirs, cls(groups(ours), **kwargs), TORCH[cls](groups(theirs), foreach=False, **kwargs)


def _feed(ours, theirs, opt_ours, opt_theirs, steps: int, seed: int = 1, skip_first: bool = True) -> None:
    """`steps` identical gradient steps; parameter 0 gets no gradient on even steps (it must be left alone)."""
    rng = np.random.default_rng(seed)
    for step in range(steps):
        grads = _arrays(int(rng.integers(1 << 30)), ours[0].dtype)
        for i, (a, b, g) in enumerate(zip(ours, theirs, grads)):
            missing = skip_first and i == 0 and step % 2 == 0
            a.grad = None if missing else cv.tensor(g)
            b.grad = None if missing else torch.tensor(g)
        opt_ours.step()
        opt_theirs.step()


def _assert_same(ours, theirs, rtol: float = RTOL, atol: float = 1e-13) -> None:
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == b.detach().numpy().dtype
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"param {i}")


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_twenty_steps_match_pytorch(cls, kwargs):
    ours, theirs, o, t = _pair(cls, list, kwargs)
    before = [p.data for p in ours]
    _feed(ours, theirs, o, t, 20)
    _assert_same(ours, theirs)
    assert all(p.data is b for p, b in zip(ours, before)), "updates must be in place on .data"
    assert not np.allclose(ours[1].data, _arrays(0)[1]), "the parameters must have moved"


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS[1::3], ids=lambda v: getattr(v, "__name__", str(v)))
def test_float32_stays_float32_and_matches(cls, kwargs):
    ours, theirs, o, t = _pair(cls, list, kwargs, dtype=np.float32)
    _feed(ours, theirs, o, t, 10)
    assert all(p.dtype == np.float32 for p in ours)
    assert all(v.dtype == np.float32 for s in o.state.values() for v in s.values() if isinstance(v, cv.Tensor))
    _assert_same(ours, theirs, rtol=1e-5, atol=1e-6)


def _two_groups(params):
    return [{"params": params[:2], "lr": 0.03}, {"params": params[2:], "lr": 0.2, "weight_decay": 0.1}]


@pytest.mark.parametrize("cls", list(TORCH))
def test_param_groups_with_different_lrs(cls):
    extra = {"momentum": 0.9} if cls in (optim.SGD, optim.RMSprop) else {}
    ours, theirs, o, t = _pair(cls, _two_groups, {"lr": 0.01, **extra})
    assert [g["lr"] for g in o.param_groups] == [0.03, 0.2]
    assert o.param_groups[0]["weight_decay"] == t.param_groups[0]["weight_decay"]
    _feed(ours, theirs, o, t, 20)
    _assert_same(ours, theirs)


def test_add_param_group_fills_defaults_and_steps_like_pytorch():
    ours, theirs, o, t = _pair(optim.SGD, lambda ps: ps[:1], {"lr": 0.1, "momentum": 0.9})
    o.add_param_group({"params": ours[1:], "lr": 0.01})
    t.add_param_group({"params": theirs[1:], "lr": 0.01})
    assert o.param_groups[1]["momentum"] == 0.9 and o.param_groups[1]["lr"] == 0.01
    _feed(ours, theirs, o, t, 20)
    _assert_same(ours, theirs)


def _state_as_numpy(sd: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    return {k: {n: float(v) if n == "step" else np.asarray(getattr(v, "data", v)) for n, v in s.items()}
            for k, s in sd["state"].items()}  # fmt: skip


@pytest.mark.parametrize(("cls", "kwargs"), [c for c in CONFIGS if c[1].get("momentum") or c[0] is not optim.SGD])
def test_state_dict_layout_matches_pytorch(cls, kwargs):
    ours, theirs, o, t = _pair(cls, _two_groups, kwargs)
    _feed(ours, theirs, o, t, 3)
    sd_o, sd_t = o.state_dict(), t.state_dict()
    assert [g["params"] for g in sd_o["param_groups"]] == [g["params"] for g in sd_t["param_groups"]] == [[0, 1], [2]]
    for g_o, g_t in zip(sd_o["param_groups"], sd_t["param_groups"]):
        assert all(g_o[k] == g_t[k] for k in g_o), f"group options differ: {g_o} vs {g_t}"
    st_o, st_t = _state_as_numpy(sd_o), _state_as_numpy(sd_t)
    assert st_o.keys() == st_t.keys()
    for k in st_o:
        assert st_o[k].keys() == st_t[k].keys()
        for name in st_o[k]:
            np.testing.assert_allclose(st_o[k][name], st_t[k][name], rtol=RTOL, atol=1e-13)


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS[1::2], ids=lambda v: getattr(v, "__name__", str(v)))
def test_state_dict_round_trip_mid_way_continues_identically(cls, kwargs):
    ours, theirs, o, t = _pair(cls, _two_groups, kwargs)
    _feed(ours, theirs, o, t, 10, seed=1)
    saved = copy.deepcopy(o.state_dict())
    clones = [cv.tensor(p.data, requires_grad=True) for p in ours]
    resumed = cls(_two_groups(clones), lr=123.0)  # hyperparameters must come back from the state dict too
    resumed.load_state_dict(saved)
    assert [g["lr"] for g in resumed.param_groups] == [0.03, 0.2]
    _feed(clones, theirs, resumed, t, 10, seed=2)
    _assert_same(clones, theirs)


def test_load_state_dict_copies_and_casts_to_param_dtype():
    p = cv.tensor(np.ones(3, np.float32), requires_grad=True)
    o = optim.SGD([p], lr=0.1, momentum=0.9)
    buf = np.arange(3.0)
    o.load_state_dict({"state": {0: {"momentum_buffer": buf}}, "param_groups": [o.state_dict()["param_groups"][0]]})
    loaded = o.state[p]["momentum_buffer"]
    assert isinstance(loaded, cv.Tensor) and loaded.dtype == np.float32
    buf[0] = 99.0
    assert loaded.data[0] == 0.0


def test_zero_grad_to_none_or_zeros():
    p = cv.tensor(np.ones(3), requires_grad=True)
    o = optim.SGD([p], lr=0.1)
    p.grad = cv.tensor(np.ones(3))
    grad = p.grad
    o.zero_grad(set_to_none=False)
    assert p.grad is grad and np.all(p.grad.data == 0)
    o.zero_grad()
    assert p.grad is None
    o.step()  # no gradient: nothing happens
    assert np.all(p.data == 1) and not o.state_dict()["state"]


def test_step_runs_the_closure_and_returns_its_loss():
    p = cv.tensor(np.array([3.0]), requires_grad=True)
    o = optim.SGD([p], lr=0.25)

    def closure():
        o.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = o.step(closure)
    assert float(loss.data) == 9.0 and p.data[0] == 3.0 - 0.25 * 6.0


def test_repr_lists_groups():
    o = optim.Adam([cv.tensor(np.ones(2), requires_grad=True)], lr=0.5)
    assert "Adam (" in repr(o) and "lr: 0.5" in repr(o)


@settings(max_examples=25, deadline=None)
@given(
    lr=st.floats(1e-4, 1.0),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    wd=st.sampled_from([0.0, 1e-3, 0.1]),
    nesterov=st.booleans(),
    maximize=st.booleans(),
)
def test_sgd_sweep(lr, momentum, wd, nesterov, maximize):
    nesterov = nesterov and momentum > 0
    kwargs = {"lr": lr, "momentum": momentum, "weight_decay": wd, "nesterov": nesterov, "maximize": maximize}
    ours, theirs, o, t = _pair(optim.SGD, list, kwargs)
    _feed(ours, theirs, o, t, 5)
    _assert_same(ours, theirs)


@settings(max_examples=25, deadline=None)
@given(
    cls=st.sampled_from([optim.Adam, optim.AdamW]),
    lr=st.floats(1e-4, 0.5),
    b1=st.floats(0.0, 0.99),
    b2=st.floats(0.0, 0.999),
    wd=st.sampled_from([0.0, 0.1]),
    amsgrad=st.booleans(),
)
def test_adam_sweep(cls, lr, b1, b2, wd, amsgrad):
    kwargs = {"lr": lr, "betas": (b1, b2), "weight_decay": wd, "amsgrad": amsgrad}
    ours, theirs, o, t = _pair(cls, list, kwargs)
    _feed(ours, theirs, o, t, 5)
    _assert_same(ours, theirs, rtol=1e-9)


P = [cv.tensor(np.ones(2), requires_grad=True)]


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: optim.SGD(P, lr=-0.1), ValueError, r"SGD: `lr` must be >= 0.0, got -0.1"),
        (lambda: optim.SGD(P, momentum=-1), ValueError, r"SGD: `momentum` must be >= 0.0, got -1"),
        (lambda: optim.SGD(P, weight_decay=-1), ValueError, r"SGD: `weight_decay` must be >= 0.0"),
        (lambda: optim.SGD(P, nesterov=True), ValueError, r"`nesterov=True` requires `momentum` > 0"),
        (
            lambda: optim.SGD(P, momentum=0.9, dampening=0.1, nesterov=True),
            ValueError,
            r"`dampening` = 0, got momentum=0.9, dampening=0.1",
        ),
        (lambda: optim.SGD(P, lr="0.1"), TypeError, r"SGD: `lr` must be a number, got str"),
        (lambda: optim.Adam(P, betas=(1.0, 0.999)), ValueError, r"Adam: `betas\[0\]` must be in \[0.0, 1.0\), got 1.0"),
        (lambda: optim.Adam(P, betas=(0.9, -0.1)), ValueError, r"`betas\[1\]` must be in \[0.0, 1.0\)"),
        (lambda: optim.Adam(P, betas=0.9), ValueError, r"`betas` must be a pair"),
        (lambda: optim.AdamW(P, eps=-1e-8), ValueError, r"AdamW: `eps` must be >= 0.0"),
        (lambda: optim.RMSprop(P, alpha=-0.5), ValueError, r"RMSprop: `alpha` must be >= 0.0"),
        (lambda: optim.RMSprop(P, alpha=1.5), ValueError, r"RMSprop: `alpha` must be in \[0, 1\]"),
        (lambda: optim.RMSprop(P, momentum=-0.5), ValueError, r"RMSprop: `momentum` must be >= 0.0"),
        (lambda: optim.SGD(P[0]), TypeError, r"`params` must be an iterable .* got a single Tensor"),
        (lambda: optim.SGD(set(P)), TypeError, r"ordered collection"),
        (lambda: optim.SGD([]), ValueError, r"SGD: got an empty parameter list"),
        (lambda: optim.SGD([np.ones(2)]), TypeError, r"params\[0\] must be a convolve Tensor, got ndarray"),
        (lambda: optim.SGD([cv.tensor([1, 2])]), TypeError, r"params\[0\] must be a floating-point tensor"),
        (lambda: optim.SGD([P[0] * 2]), ValueError, r"params\[0\] is not a leaf tensor"),
        (lambda: optim.SGD(P + P), ValueError, r"lists the same parameter more than once"),
        (lambda: optim.SGD([{"params": P}, {"params": P}]), ValueError, r"more than one parameter group"),
        (lambda: optim.SGD([{"params": P, "lrr": 0.1}]), ValueError, r"unknown option\(s\) \['lrr'\]"),
        (lambda: optim.SGD([{"params": P, "lr": -1.0}]), ValueError, r"SGD: `lr` must be >= 0.0, got -1.0"),
        (lambda: optim.SGD([{"lr": 0.1}]), ValueError, r"must have a 'params' entry"),
    ],
)
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_load_state_dict_validation():
    a, b = (cv.tensor(np.ones(2), requires_grad=True) for _ in range(2))
    o = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1, momentum=0.9)
    o_one = optim.SGD([a, b], lr=0.1, momentum=0.9)
    sd = o.state_dict()
    with pytest.raises(ValueError, match=r"has 2 parameter groups, the optimizer has 1"):
        o_one.load_state_dict(sd)
    bigger = optim.SGD([{"params": [a, b]}, {"params": [cv.tensor(np.ones(2), requires_grad=True)]}], lr=0.1)
    with pytest.raises(ValueError, match=r"param_groups\[0\] has 1 parameters, the optimizer's group has 2"):
        bigger.load_state_dict(sd)
    with pytest.raises(ValueError, match=r"lacks option\(s\) \['amsgrad', 'betas'"):
        optim.Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"state entry 7 names no parameter"):
        o.load_state_dict({"state": {7: {}}, "param_groups": sd["param_groups"]})
    with pytest.raises(ValueError, match=r"state\[0\]\['momentum_buffer'\] has shape \(3,\), its parameter \(2,\)"):
        o.load_state_dict({"state": {0: {"momentum_buffer": np.ones(3)}}, "param_groups": sd["param_groups"]})
    with pytest.raises(ValueError, match=r"expected a dict with keys \['param_groups', 'state'\]"):
        o.load_state_dict({"state": {}})
    with pytest.raises(ValueError, match=r"a gradient has shape \(3,\), its parameter \(2,\)"):
        a.grad = cv.tensor(np.ones(3))
        o.step()


@pytest.mark.parametrize(("cls", "kwargs"), [CONFIGS[2], CONFIGS[11], CONFIGS[15], CONFIGS[19]])
def test_pytorch_state_dict_converted_to_numpy_loads_and_continues(cls, kwargs):
    ours, theirs, o, t = _pair(cls, _two_groups, kwargs)
    _feed(ours, theirs, o, t, 6)
    sd = t.state_dict()
    converted = {
        "state": {k: {n: v.detach().numpy().copy() for n, v in s.items()} for k, s in sd["state"].items()},
        "param_groups": sd["param_groups"],
    }
    clones = [cv.tensor(p.detach().numpy(), requires_grad=True) for p in theirs]
    fresh = cls(_two_groups(clones))
    fresh.load_state_dict(converted)
    _feed(clones, theirs, fresh, t, 6, seed=3)
    _assert_same(clones, theirs)
