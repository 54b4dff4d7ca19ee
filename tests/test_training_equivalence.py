"""End to end: a small CNN trained in convolve and in PyTorch from the same weights on the same batches follows the
same loss curve (float64, rtol 1e-8); a checkpoint (model + optimizer + scheduler) saved with convolve.io and loaded
into a fresh model resumes training bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import convolve as cv
import convolve.nn.functional as F
from convolve import io, nn, optim
from convolve.optim import lr_scheduler

STEPS = 50


def _batch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Learnable labels: class c brightens horizontal band c (rows 0-2, 3-5, 6-7) of a noise image."""
    y = rng.integers(0, 3, 8)
    x = rng.standard_normal((8, 1, 8, 8))
    for c, rows in enumerate((slice(0, 3), slice(3, 6), slice(6, 8))):
        x[y == c, 0, rows] += 0.7
    return x, y


BATCHES = [_batch(rng) for rng in [np.random.default_rng(0)] for _ in range(STEPS)]


def _layers(mod: Any) -> list[Any]:
    """conv-relu-maxpool-conv-relu-flatten-linear, for either library: (N, 1, 8, 8) -> (N, 3)."""
    return [mod.Conv2d(1, 4, 3, padding=1), mod.ReLU(), mod.MaxPool2d(2), mod.Conv2d(4, 6, 3), mod.ReLU(),
            mod.Flatten(), mod.Linear(6 * 2 * 2, 3)]  # fmt: skip


def _models(seed: int = 0) -> tuple[nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(*_layers(torch.nn)).double()
    ours = nn.Sequential(*_layers(nn)).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _optimizers(kind: str, ours: nn.Module, theirs: torch.nn.Module) -> tuple[Any, Any, Any, Any]:
    """(our optimizer, torch optimizer, our scheduler or None, torch scheduler or None)."""
    if kind == "sgd":
        kw = {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3}
        return optim.SGD(ours.parameters(), **kw), torch.optim.SGD(theirs.parameters(), **kw), None, None
    o, t = optim.Adam(ours.parameters()), torch.optim.Adam(theirs.parameters())
    kw = {"max_lr": 0.05, "total_steps": STEPS}
    return o, t, lr_scheduler.OneCycleLR(o, **kw), torch.optim.lr_scheduler.OneCycleLR(t, **kw)


def _train_ours(model: nn.Module, opt: Any, sched: Any, batches: list[Any]) -> list[float]:
    losses = []
    for x, y in batches:
        opt.zero_grad()
        loss = F.cross_entropy(model(cv.tensor(x)), cv.tensor(y))
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(float(loss.item()))
    return losses


def _train_theirs(model: torch.nn.Module, opt: Any, sched: Any, batches: list[Any]) -> list[float]:
    losses = []
    for x, y in batches:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("kind", ["sgd", "adam-onecycle"])
def test_same_loss_curve_as_pytorch(kind):
    ours, theirs = _models()
    o, t, so, st = _optimizers(kind, ours, theirs)
    loss_ours = _train_ours(ours, o, so, BATCHES)
    loss_theirs = _train_theirs(theirs, t, st, BATCHES)
    np.testing.assert_allclose(loss_ours, loss_theirs, rtol=1e-8, atol=0)
    assert np.mean(loss_ours[-10:]) < 0.5 * np.mean(loss_ours[:10]), "training must make progress"
    for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-8, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("kind", ["sgd", "adam-onecycle"])
def test_checkpoint_resume_is_exact(tmp_path, kind):
    half = STEPS // 2
    model, theirs = _models()
    opt, _, sched, _ = _optimizers(kind, model, theirs)
    _train_ours(model, opt, sched, BATCHES[:half])
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": half}
    if sched is not None:
        ckpt["scheduler"] = sched.state_dict()
    io.save(ckpt, tmp_path / "ckpt.npz")

    fresh, other = _models(seed=1)  # different initial weights, overwritten by the checkpoint
    fresh_opt, _, fresh_sched, _ = _optimizers(kind, fresh, other)
    loaded = io.load(tmp_path / "ckpt.npz")
    fresh.load_state_dict(loaded["model"])
    fresh_opt.load_state_dict(loaded["optimizer"])
    if fresh_sched is not None:
        fresh_sched.load_state_dict(loaded["scheduler"])
    assert loaded["step"] == half

    probe = cv.tensor(BATCHES[0][0])
    np.testing.assert_array_equal(fresh(probe).data, model(probe).data)
    rest_fresh = _train_ours(fresh, fresh_opt, fresh_sched, BATCHES[half:])
    rest_orig = _train_ours(model, opt, sched, BATCHES[half:])
    assert rest_fresh == rest_orig
    for (k, a), b in zip(fresh.state_dict().items(), model.state_dict().values()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=k)
