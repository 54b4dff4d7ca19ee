"""Training with the Inception recipe's pieces: auxiliary logits weighted into the loss (and their head trained),
label smoothing on both, gradient clipping before the step, RMSprop with the paper's decay and epsilon."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

import convolve as cv
import convolve.models as M
from convolve import nn, optim
from convolve.train import Trainer
from tests.model_helpers import one_blas_thread  # noqa: F401 (autouse fixture)


class RecordingLoss:
    """Label-smoothed cross-entropy that remembers each value it returned (main loss first, then the aux's)."""

    def __init__(self) -> None:
        self.loss, self.values = nn.CrossEntropyLoss(label_smoothing=0.1), []

    def __call__(self, output: cv.Tensor, target: cv.Tensor) -> cv.Tensor:
        value = self.loss(output, target)
        self.values.append(float(value.item()))
        return value


def one_step(model: nn.Module, batch: int, **trainer_options: Any) -> tuple[dict[str, float], RecordingLoss]:
    x = cv.randn(batch, 3, 299, 299)
    y = cv.tensor(np.arange(batch) % 3)
    loss = RecordingLoss()
    trainer = Trainer(model, loss, optim.SGD(model.parameters(), lr=0.1), progress=False, **trainer_options)
    return trainer.train_epoch([(x, y)], 1, 1), loss


@pytest.mark.parametrize(("builder", "batch"), [("inception_v2", 1), ("inception_v3", 2)])
def test_one_inception_step_trains_the_aux_head(builder: str, batch: int) -> None:
    """v2's aux FC has no BatchNorm (batch 1 works); v3's BN-auxiliary needs 2 values per channel."""
    cv.manual_seed(0)
    model = M.get_model(builder, num_classes=3, dropout=0.0)
    before = copy.deepcopy(model.state_dict())
    record, loss = one_step(model, batch)
    assert len(loss.values) == 2  # the main logits, then the aux logits
    main, aux = loss.values
    assert record["train_loss"] == pytest.approx(main + 0.4 * aux, rel=1e-6)  # Inception3.aux_loss_weight
    after = model.state_dict()
    for key in ("AuxLogits.fc.weight", "AuxLogits.conv0.conv.weight", "fc.weight", "Mixed_5b.branch1x1.conv.weight"):
        assert not np.array_equal(before[key].numpy(), after[key].numpy()), f"{key} was not trained"


def test_aux_weight_zero_leaves_the_aux_head_alone() -> None:
    cv.manual_seed(0)
    model = M.googlenet(num_classes=3, dropout=0.0, dropout_aux=0.0)
    before = copy.deepcopy(model.state_dict())
    x, y = cv.randn(2, 3, 64, 64), cv.tensor(np.array([0, 2]))
    Trainer(model, None, optim.SGD(model.parameters(), lr=0.1), progress=False, aux_weight=0.0).train_epoch(
        [(x, y)], 1, 1)
    after = model.state_dict()
    assert np.array_equal(before["aux1.fc2.weight"].numpy(), after["aux1.fc2.weight"].numpy())
    assert not np.array_equal(before["fc.weight"].numpy(), after["fc.weight"].numpy())


def test_gradient_clipping_happens_before_the_step() -> None:
    """Trainer(clip_grad_norm=2.0) = backward, clip_grad_norm_(params, 2.0), step, done by hand."""
    cv.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    twin = copy.deepcopy(model)
    x, y = cv.randn(8, 5) * 50, cv.tensor(np.arange(8) % 3)  # large inputs: a gradient norm well above 2
    Trainer(model, None, optim.SGD(model.parameters(), lr=0.5), progress=False, clip_grad_norm=2.0).train_epoch(
        [(x, y)], 1, 1)
    opt = optim.SGD(twin.parameters(), lr=0.5)
    nn.functional.cross_entropy(twin(x), y).backward()
    assert nn.utils.clip_grad_norm_(twin.parameters(), 2.0).item() > 2.0
    opt.step()
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)


def test_rmsprop_with_the_papers_decay_and_epsilon_matches_torch() -> None:
    """decay 0.9 is PyTorch's `alpha`, epsilon 1.0 its `eps` (added outside the square root, see the docs)."""
    import torch

    rng = np.random.default_rng(0)
    start, grads = rng.standard_normal((3, 4)), rng.standard_normal((5, 3, 4))
    ours, theirs = cv.tensor(start.copy(), requires_grad=True), torch.tensor(start.copy(), requires_grad=True)
    settings = dict(lr=0.045, alpha=0.9, eps=1.0, momentum=0.9)
    opt, ref = optim.RMSprop([ours], **settings), torch.optim.RMSprop([theirs], **settings)
    for g in grads:
        ours.grad, theirs.grad = cv.tensor(g.copy()), torch.tensor(g.copy())
        opt.step()
        ref.step()
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12)


class TwoHeads(nn.Module):
    """A model returning (logits, aux) in training, without an `aux_loss_weight`."""

    def __init__(self) -> None:
        super().__init__()
        self.main, self.aux = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x: cv.Tensor) -> Any:
        return (self.main(x), self.aux(x)) if self.training else self.main(x)


def test_aux_weight_errors() -> None:
    x, y = cv.randn(4, 4), cv.tensor(np.array([0, 1, 2, 0]))
    plain = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"`aux_weight` \(=0.4\) was given but Linear returned no auxiliary logits"):
        Trainer(plain, None, optim.SGD(plain.parameters(), lr=0.1), progress=False, aux_weight=0.4).train_epoch(
            [(x, y)], 1, 1)
    heads = TwoHeads()
    with pytest.raises(ValueError, match="TwoHeads returned 1 auxiliary logits in training mode; give their loss"):
        Trainer(heads, None, optim.SGD(heads.parameters(), lr=0.1), progress=False).train_epoch([(x, y)], 1, 1)
    record = Trainer(heads, None, optim.SGD(heads.parameters(), lr=0.1), progress=False,
                     aux_weight=1.0).train_epoch([(x, y)], 1, 1)
    assert np.isfinite(record["train_loss"])
    for bad in (-0.1, float("nan"), True, "0.4"):
        with pytest.raises(ValueError, match="`aux_weight` must be a finite number >= 0 or None"):
            Trainer(plain, None, optim.SGD(plain.parameters(), lr=0.1), aux_weight=bad)
    for bad in (0, -2.0, True):
        with pytest.raises(ValueError, match="`clip_grad_norm` must be a number > 0 or None"):
            Trainer(plain, None, optim.SGD(plain.parameters(), lr=0.1), clip_grad_norm=bad)
