"""LambdaLR, MultiplicativeLR, CosineAnnealingWarmRestarts and CyclicLR vs PyTorch over many steps (rtol 1e-10,
two param groups, momenta included), fractional-epoch jumps, state_dict round trips and argument errors."""

from __future__ import annotations

import numpy as np
import pytest

from convolve.optim import lr_scheduler as ls
from tests.test_lr_scheduler import RTOL, TS, _optimizers, _trace


class Halve:
    """A callable object: its state travels in the scheduler's state_dict (functions do not)."""

    def __init__(self) -> None:
        self.factor = 0.5

    def __call__(self, epoch: int) -> float:
        return self.factor ** (epoch // 7)


CASES = [
    ("LambdaLR", lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 0.95**e), "sgd"),
    ("LambdaLR-per-group", lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.9**e]), "adam"),
    ("MultiplicativeLR", lambda m, o: m.MultiplicativeLR(o, lr_lambda=lambda e: 0.97 if e % 3 else 0.9), "sgd"),
    ("ConstantLR", lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=4), "sgd"),
    ("PolynomialLR", lambda m, o: m.PolynomialLR(o, total_iters=50, power=2.0), "adam"),
    ("WarmRestarts", lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7), "sgd"),
    ("WarmRestarts-T_mult", lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=1e-3), "adam"),
    ("CyclicLR", lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5), "sgd"),
    ("CyclicLR-triangular2", lambda m, o: m.CyclicLR(o, [0.01, 0.02], [0.1, 0.3], step_size_up=4,
                                                      step_size_down=9, mode="triangular2"), "sgd"),
    ("CyclicLR-exp_range-adam", lambda m, o: m.CyclicLR(o, 0.001, 0.01, step_size_up=6, mode="exp_range",
                                                         gamma=0.97), "adam"),
    ("CyclicLR-scale_fn", lambda m, o: m.CyclicLR(o, 0.001, 0.01, 3, scale_fn=lambda x: 0.99**x,
                                                   scale_mode="iterations", cycle_momentum=False), "sgd"),
]


@pytest.mark.parametrize(("name", "make", "kind"), CASES, ids=[c[0] for c in CASES])
def test_learning_rates_and_momenta_match_pytorch_over_many_steps(name, make, kind):
    o, t = _optimizers(kind)
    ours, theirs = _trace(o, make(ls, o), 120), _trace(t, make(TS, t), 120)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)
    assert len({round(r[0], 12) for r in ours}) >= 2, "the schedule must actually change the lr"


def test_warm_restarts_fractional_epochs_match_pytorch():
    traces = []
    for mod, opt in zip((ls, TS), _optimizers()):
        sched = mod.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=3, eta_min=0.001)
        rows = []
        for epoch in range(12):
            for i in range(4):
                opt.step()
                sched.step(epoch + i / 4)
                rows.append(sched.get_last_lr())
        traces.append(rows)
    np.testing.assert_allclose(traces[0], traces[1], rtol=RTOL, atol=0)


@pytest.mark.parametrize("which", [5, 7, 10], ids=["WarmRestarts-T_mult", "CyclicLR", "CyclicLR-scale_fn"])
def test_state_dict_resumes_exactly(which):
    _, make, kind = CASES[which]
    o, t = _optimizers(kind)
    sched = make(ls, o)
    _trace(o, sched, 10)
    o2, _ = _optimizers(kind)
    sched2 = make(ls, o2)
    o2.load_state_dict(o.state_dict())
    sched2.load_state_dict(sched.state_dict())
    theirs = _trace(t, make(TS, t), 25)
    np.testing.assert_allclose(_trace(o2, sched2, 15)[1:], theirs[11:], rtol=RTOL, atol=0)


def test_lambda_object_state_travels_and_functions_do_not():
    o, _ = _optimizers()
    halve = Halve()
    sched = ls.LambdaLR(o, halve)
    halve.factor = 0.25
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"factor": 0.25}, {"factor": 0.25}]
    other = Halve()
    ls.LambdaLR(_optimizers()[0], other).load_state_dict(state)
    assert other.factor == 0.25
    assert ls.LambdaLR(o, lambda e: 1.0).state_dict()["lr_lambdas"] == [None, None]


def test_step_interval_says_how_often_to_step():
    o, _ = _optimizers()
    assert ls.CyclicLR(o, 0.01, 0.1).step_interval == "batch"
    assert ls.OneCycleLR(o, 0.1, total_steps=10).step_interval == "batch"
    assert ls.LambdaLR(o, lambda e: 1.0).step_interval == "epoch" == ls.LRScheduler.step_interval


def test_bad_arguments():
    o, _ = _optimizers()
    with pytest.raises(ValueError, match=r"`lr_lambda` has 3 values but the optimizer has 2 groups"):
        ls.LambdaLR(o, [lambda e: 1.0] * 3)
    with pytest.raises(TypeError, match=r"`lr_lambda` must be callable"):
        ls.MultiplicativeLR(o, 0.9)
    with pytest.raises(ValueError, match=r"`T_0` must be a positive int, got 0"):
        ls.CosineAnnealingWarmRestarts(o, T_0=0)
    with pytest.raises(ValueError, match=r"`mode` must be 'triangular'"):
        ls.CyclicLR(o, 0.1, 1.0, mode="sine")
    o.defaults.pop("momentum")  # as an optimizer without momentum or betas
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        ls.CyclicLR(o, 0.1, 1.0)
