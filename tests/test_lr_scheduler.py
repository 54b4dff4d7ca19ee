"""Schedulers vs PyTorch: the same learning rates (and OneCycle momenta) step by step, rtol 1e-10, with two param
groups; ReduceLROnPlateau on the same metric sequence; state_dict round trip mid-way (also through convolve.io)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import convolve as cv
from convolve import io, optim
from convolve.optim import lr_scheduler as ls

RTOL = 1e-10
TS = torch.optim.lr_scheduler


def _optimizers(kind: str = "sgd") -> tuple[optim.Optimizer, torch.optim.Optimizer]:
    ours = [cv.tensor(np.ones(2), requires_grad=True) for _ in range(2)]
    theirs = [torch.ones(2, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    if kind == "adam":
        groups = [{"params": ours[:1]}, {"params": ours[1:], "lr": 0.02}]
        return optim.Adam(groups, lr=0.1), torch.optim.Adam(
            [{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.02}], lr=0.1
        )
    kwargs = {"lr": 0.1, "momentum": 0.9}
    return (
        optim.SGD([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.05}], **kwargs),
        torch.optim.SGD([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.05}], **kwargs),
    )


def _momenta(opt: Any) -> list[float]:
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def _trace(opt: Any, sched: Any, steps: int, metrics: list[float] | None = None) -> list[list[float]]:
    """lr (from get_last_lr and from the groups) and momentum after each step, starting with the initial ones."""
    rows = [[*sched.get_last_lr(), *(g["lr"] for g in opt.param_groups), *_momenta(opt)]]
    for i in range(steps):
        opt.step()  # no gradients: a no-op, but keeps PyTorch's call-order check quiet
        sched.step() if metrics is None else sched.step(metrics[i])
        rows.append([*sched.get_last_lr(), *(g["lr"] for g in opt.param_groups), *_momenta(opt)])
    return rows


SCHEDULERS: list[tuple[str, Callable[[Any, Any], Any], str]] = [
    ("StepLR", lambda m, o: m.StepLR(o, step_size=3, gamma=0.5), "sgd"),
    ("MultiStepLR", lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 11], gamma=0.3), "sgd"),
    ("ExponentialLR", lambda m, o: m.ExponentialLR(o, gamma=0.9), "sgd"),
    ("CosineAnnealingLR", lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=1e-3), "sgd"),
    ("CosineAnnealingLR-beyond-T_max", lambda m, o: m.CosineAnnealingLR(o, T_max=4), "adam"),
    ("LinearLR", lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=8), "sgd"),
    ("LinearLR-decay", lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=6), "sgd"),
    ("OneCycleLR-cos", lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=30), "sgd"),
    (
        "OneCycleLR-linear-adam",
        lambda m, o: m.OneCycleLR(o, 0.3, epochs=5, steps_per_epoch=6, anneal_strategy="linear"),
        "adam",
    ),
    (
        "OneCycleLR-three-phase",
        lambda m, o: m.OneCycleLR(
            o, 0.8, total_steps=30, three_phase=True, pct_start=0.25, div_factor=10.0, final_div_factor=100.0
        ),
        "sgd",
    ),
    ("OneCycleLR-no-momentum", lambda m, o: m.OneCycleLR(o, 0.8, total_steps=30, cycle_momentum=False), "adam"),
]


@pytest.mark.parametrize(("name", "make", "kind"), SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_learning_rates_match_pytorch(name, make, kind):
    o, t = _optimizers(kind)
    ours, theirs = _trace(o, make(ls, o), 29), _trace(t, make(TS, t), 29)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)
    assert len({round(r[0], 12) for r in ours}) > 2, "the schedule must actually change the lr"
    assert [g["initial_lr"] for g in o.param_groups] == [g["initial_lr"] for g in t.param_groups]


def test_sequential_warmup_then_cosine_matches_pytorch():
    traces = []
    for mod, opt in zip((ls, TS), _optimizers()):
        warm = mod.LinearLR(opt, start_factor=0.2, total_iters=4)
        cos = mod.CosineAnnealingLR(opt, T_max=10)
        traces.append(_trace(opt, mod.SequentialLR(opt, [warm, cos], milestones=[4]), 20))
    np.testing.assert_allclose(traces[0], traces[1], rtol=RTOL, atol=0)


METRICS = [1.0, 0.9, 0.9, 0.95, 0.91, 0.9, 0.899, 0.9, 0.9, 0.9, 0.8, 0.81, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7,
           0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]  # fmt: skip


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patience": 2},
        {"patience": 1, "factor": 0.5, "cooldown": 2},
        {"patience": 0, "threshold": 0.05, "threshold_mode": "abs", "min_lr": [0.02, 0.01]},
        {"mode": "max", "patience": 1, "factor": 0.5},
        {"mode": "max", "patience": 1, "threshold_mode": "abs", "threshold": 0.0, "min_lr": 0.004, "eps": 1e-3},
    ],
)
def test_reduce_on_plateau_matches_pytorch(kwargs):
    o, t = _optimizers()
    metrics = [*METRICS, *METRICS]
    ours = _trace(o, ls.ReduceLROnPlateau(o, **kwargs), len(metrics), metrics)
    theirs = _trace(t, TS.ReduceLROnPlateau(t, **kwargs), len(metrics), metrics)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)
    assert ours[-1][0] < ours[0][0], "the lr must have been reduced"


def test_reduce_on_plateau_accepts_a_one_element_tensor():
    o, _ = _optimizers()
    sched = ls.ReduceLROnPlateau(o, patience=0)
    sched.step(cv.tensor(np.array(1.0)))
    sched.step(cv.tensor(np.array(2.0)))
    assert sched.get_last_lr() == [0.1 * 0.1, 0.05 * 0.1]


RESUMABLE = [s for s in SCHEDULERS if s[0] in ("MultiStepLR", "CosineAnnealingLR", "OneCycleLR-cos", "LinearLR")]


@pytest.mark.parametrize(("name", "make", "kind"), RESUMABLE, ids=[s[0] for s in RESUMABLE])
def test_state_dict_round_trip_through_io_resumes_exactly(tmp_path, name, make, kind):
    o, t = _optimizers(kind)
    sched = make(ls, o)
    _trace(o, sched, 10)
    io.save({"optimizer": o.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "ckpt.npz")
    ckpt = io.load(tmp_path / "ckpt.npz")
    o2, _ = _optimizers(kind)
    sched2 = make(ls, o2)  # build first (it rewrites the lrs), then load both states, as in PyTorch
    o2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    theirs = _trace(t, make(TS, t), 25)
    np.testing.assert_allclose(_trace(o2, sched2, 15)[1:], theirs[11:], rtol=RTOL, atol=0)


def test_reduce_on_plateau_state_dict_round_trip(tmp_path):
    o, _ = _optimizers()
    sched = ls.ReduceLROnPlateau(o, patience=1, cooldown=1)
    _trace(o, sched, 8, METRICS)
    io.save(sched.state_dict(), tmp_path / "s.npz")
    o2, _ = _optimizers()
    o2.load_state_dict(o.state_dict())
    sched2 = ls.ReduceLROnPlateau(o2)
    sched2.load_state_dict(io.load(tmp_path / "s.npz"))
    rest = METRICS[8:]
    np.testing.assert_allclose(_trace(o2, sched2, len(rest), rest), _trace(o, sched, len(rest), rest), rtol=RTOL)


def test_resume_with_last_epoch_needs_initial_lr():
    o, _ = _optimizers()
    with pytest.raises(KeyError, match=r"StepLR: param_groups\[0\] has no 'initial_lr' although `last_epoch` = 4"):
        ls.StepLR(o, step_size=2, last_epoch=4)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda o: ls.StepLR(object(), 3), TypeError, r"StepLR: `optimizer` must be a convolve Optimizer, got object"),
        (lambda o: ls.StepLR(o, step_size=0), ValueError, r"StepLR: `step_size` must be a positive int, got 0"),
        (lambda o: ls.CosineAnnealingLR(o, T_max=2.5), ValueError, r"`T_max` must be a positive int, got 2.5"),
        (lambda o: ls.LinearLR(o, start_factor=0), ValueError, r"`start_factor` must be in \(0, 1\], got 0"),
        (lambda o: ls.LinearLR(o, end_factor=1.5), ValueError, r"`end_factor` must be in \[0, 1\], got 1.5"),
        (lambda o: ls.ReduceLROnPlateau(o, factor=1.0), ValueError, r"`factor` must be in \[0, 1\), got 1.0"),
        (lambda o: ls.ReduceLROnPlateau(o, mode="mean"), ValueError, r"`mode` must be 'min' or 'max', got 'mean'"),
        (lambda o: ls.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, r"`threshold_mode` must be 'rel' or"),
        (lambda o: ls.ReduceLROnPlateau(o, patience=-1), ValueError, r"`patience` must be a non-negative int"),
        (lambda o: ls.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, r"`min_lr` has 1 values but the optimizer has 2"),
        (lambda o: ls.OneCycleLR(o, 0.1), ValueError, r"give either `total_steps` or both `epochs`"),
        (lambda o: ls.OneCycleLR(o, 0.1, total_steps=0), ValueError, r"`total_steps` must be a positive int, got 0"),
        (lambda o: ls.OneCycleLR(o, 0.1, 10, pct_start=1.5), ValueError, r"`pct_start` must be a float in \[0, 1\]"),
        (lambda o: ls.OneCycleLR(o, 0.1, 10, anneal_strategy="exp"), ValueError, r"'cos' or 'linear', got 'exp'"),
        (lambda o: ls.OneCycleLR(o, [0.1], 10), ValueError, r"`max_lr` has 1 values but the optimizer has 2 groups"),
        (lambda o: ls.SequentialLR(o, [], []), ValueError, r"SequentialLR: `schedulers` must hold at least one"),
        (lambda o: ls.SequentialLR(o, [ls.StepLR(o, 2)], [3]), ValueError, r"expected 0 milestones for 1 schedulers"),
    ],
)
def test_bad_arguments(make, error, match):
    o, _ = _optimizers()
    with pytest.raises(error, match=match):
        make(o)


def test_one_cycle_refuses_to_step_past_total_steps():
    o, _ = _optimizers()
    sched = ls.OneCycleLR(o, 0.1, total_steps=3)
    for _ in range(2):
        sched.step()
    sched.step()
    with pytest.raises(ValueError, match=r"OneCycleLR: stepped 4 times but `total_steps` is 3"):
        sched.step()


def test_one_cycle_cycle_momentum_needs_momentum_or_betas():
    o = optim.RMSprop([cv.tensor(np.ones(2), requires_grad=True)])
    del o.defaults["momentum"]
    with pytest.raises(ValueError, match=r"`cycle_momentum=True` needs an optimizer with `momentum` or `betas`"):
        ls.OneCycleLR(o, 0.1, total_steps=10)


def test_schedulers_declare_how_they_step_and_the_trainer_follows():
    """OneCycleLR steps per batch, the others per epoch; the trainer reads `step_interval`, not class names."""
    from convolve.train import Trainer

    model = cv.nn.Linear(2, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    assert ls.LRScheduler.step_interval == "epoch"
    assert ls.StepLR(opt, step_size=1).step_interval == "epoch"
    assert ls.ReduceLROnPlateau(opt).step_interval == "epoch"
    assert ls.OneCycleLR(opt, max_lr=0.1, total_steps=10).step_interval == "batch"

    class PerBatch(ls.StepLR):
        step_interval = "batch"

    assert Trainer(model, None, opt, PerBatch(opt, step_size=1)).scheduler_interval == "batch"
    assert Trainer(model, None, opt, ls.StepLR(opt, step_size=1)).scheduler_interval == "epoch"
    old_name = Trainer(model, None, opt, ls.StepLR(opt, 1), scheduler_interval="step")
    assert old_name.scheduler_interval == "batch"
    with pytest.raises(ValueError, match="`scheduler_interval` must be 'auto', 'epoch' or 'batch', got 'iteration'"):
        Trainer(model, None, opt, scheduler_interval="iteration")
