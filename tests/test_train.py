"""Training loop: metrics against hand-computed values, history files, checkpoints, exact resume, seeding,
early stopping and the progress bar, on a tiny CNN and a synthetic 8x8 dataset (seconds, not minutes)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

import convolve as cv
from convolve import nn, optim
from convolve.data import ArrayDataset, DataLoader, transforms
from convolve.train import (
    LAST,
    EarlyStopping,
    History,
    MetricAccumulator,
    Trainer,
    accuracy,
    confusion_matrix,
    evaluate,
    fit,
    load_checkpoint,
    per_class_accuracy,
    topk_accuracy,
)
from convolve.train.progress import EpochProgress, progress_enabled

# ----- metrics ------------------------------------------------------------------------------------------
LOGITS = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
TARGETS = np.array([1, 0, 0, 2, 2])  # predictions: 1 0 2 1 0 -> 2 of 5 right


def test_accuracy_and_topk_by_hand():
    assert accuracy(LOGITS, TARGETS) == pytest.approx(2 / 5)
    # top-2 sets: {1,2} {0,1|2} {2,0|1} {1,2} {0,1}: hits rows 0, 1, 2 (0.3 ties -> argpartition picks one), 3
    assert topk_accuracy(LOGITS[[0, 1, 3, 4]], TARGETS[[0, 1, 3, 4]], k=2) == pytest.approx(3 / 4)
    assert topk_accuracy(LOGITS, TARGETS, k=3) == 1.0
    assert topk_accuracy(LOGITS, TARGETS, k=5) == 1.0  # k larger than the class count: every row is a hit


def test_confusion_matrix_and_per_class_by_hand():
    cm = confusion_matrix(LOGITS.argmax(1), TARGETS, 3)
    expected = np.array([[1, 0, 1],   # true 0: predicted 0 once, 2 once
                         [0, 1, 0],   # true 1: predicted 1
                         [1, 1, 0]])  # true 2: predicted 1 and 0
    np.testing.assert_array_equal(cm, expected)
    np.testing.assert_allclose(per_class_accuracy(cm), [0.5, 1.0, 0.0])
    assert math.isnan(per_class_accuracy(np.array([[1, 0], [0, 0]]))[1])  # a class with no samples


def test_metric_accumulator_matches_whole_batch():
    acc = MetricAccumulator()
    acc.update(LOGITS[:2], TARGETS[:2], loss=1.0)
    acc.update(cv.tensor(LOGITS[2:]), cv.tensor(TARGETS[2:]), loss=2.0)
    res = acc.result()
    assert res.accuracy == pytest.approx(0.4) and res.num_samples == 5
    assert res.loss == pytest.approx((1.0 * 2 + 2.0 * 3) / 5)
    np.testing.assert_array_equal(res.confusion_matrix, confusion_matrix(LOGITS.argmax(1), TARGETS, 3))


@pytest.mark.parametrize("bad, match", [
    ((LOGITS[0], TARGETS[:1]), "must be 2-D"),
    ((LOGITS, TARGETS[:3]), "must be 1-D with 5 entries"),
    ((LOGITS, TARGETS.astype(float)), "integer class indices"),
    ((LOGITS, TARGETS + 1), r"values must be in \[0, 2\]"),
])
def test_metric_errors(bad, match):
    with pytest.raises((ValueError, TypeError), match=f"accuracy: `.*{match}"):
        accuracy(*bad)


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError, match=r"`pred` values must be in \[0, 1\]"):
        confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="no samples"):
        MetricAccumulator().result()


# ----- history ------------------------------------------------------------------------------------------
def test_history_csv_json_roundtrip(tmp_path):
    h = History()
    h.append({"epoch": 1, "loss": np.float32(0.5)})
    h.append({"epoch": 2, "loss": 0.25, "val_loss": 0.3})
    h.save(tmp_path)
    rows = list(csv.DictReader((tmp_path / "history.csv").read_text().splitlines()))
    assert [r["loss"] for r in rows] == ["0.5", "0.25"] and rows[0]["val_loss"] == ""
    data = json.loads((tmp_path / "history.json").read_text())
    assert data == {"epoch": [1, 2], "loss": [0.5, 0.25], "val_loss": [None, 0.3]}
    back = History.load_json(tmp_path / "history.json")
    assert back["loss"] == [0.5, 0.25] and math.isnan(back["val_loss"][0])


# ----- a tiny training problem --------------------------------------------------------------------------
def make_data(n=96, seed=0):
    """Class k: a bright 3x3 blob in one of 4 corners plus noise (learnable in a couple of epochs)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
    for i, k in enumerate(y):
        r, c = divmod(int(k), 2)
        x[i, r * 5 : r * 5 + 3, c * 5 : c * 5 + 3] = 255
    return ArrayDataset(x, y)


def make_run(seed=0, augment=True, sched="onecycle", opt="sgd"):
    cv.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Dropout(0.2), nn.Linear(64, 4))
    steps = [transforms.ToTensor()]
    if augment:
        steps.append(transforms.RandomCrop(8, padding=1, generator=cv.Generator(seed + 7)))
    loader = DataLoader(make_data(), batch_size=16, shuffle=True, generator=cv.Generator(seed),
                        transform=transforms.Compose(steps))
    if opt == "sgd":
        optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        optimizer = optim.Adam(model.parameters(), lr=0.01)
    scheduler = {"onecycle": lambda: optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=4 * 6),
                 "step": lambda: optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5),
                 "none": lambda: None}[sched]()
    val = DataLoader(make_data(32, seed=1), batch_size=16)
    return model, loader, optimizer, scheduler, val


def weights(model):
    return {k: np.array(v.data) for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


class KilledError(Exception):
    pass


def kill_after(epoch):
    def cb(trainer, e, record):
        if e == epoch:
            raise KilledError
    return cb


@pytest.mark.parametrize("sched, opt", [("onecycle", "sgd"), ("step", "adam")])
def test_killed_run_resumes_to_identical_weights(tmp_path, sched, opt):
    model, loader, optimizer, scheduler, val = make_run(sched=sched, opt=opt)
    full = fit(model, loader, nn.CrossEntropyLoss(), optimizer, 4, scheduler=scheduler, val_loader=val,
               checkpoint_dir=tmp_path / "a", progress=False)
    model2, loader2, optimizer2, scheduler2, val2 = make_run(sched=sched, opt=opt)
    with pytest.raises(KilledError):
        fit(model2, loader2, nn.CrossEntropyLoss(), optimizer2, 4, scheduler=scheduler2, val_loader=val2,
            checkpoint_dir=tmp_path / "b", progress=False, callbacks=[kill_after(2)])
    cv.manual_seed(123)  # the resumed process starts with other RNG states and a freshly initialised model
    model3, loader3, optimizer3, scheduler3, val3 = make_run(seed=5, sched=sched, opt=opt)
    loader3.generator.manual_seed(0)
    resumed = fit(model3, loader3, nn.CrossEntropyLoss(), optimizer3, 4, scheduler=scheduler3, val_loader=val3,
                  checkpoint_dir=tmp_path / "b", resume=True, progress=False)
    assert_same_weights(weights(model), weights(model3))
    assert len(resumed) == 4 and resumed["train_loss"] == full["train_loss"]
    assert optimizer3.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_seeded_runs_are_identical_and_seeds_matter():
    runs = []
    for seed in (3, 3, 4):
        model, loader, optimizer, scheduler, _ = make_run()
        fit(model, loader, None, optimizer, 2, scheduler=scheduler, seed=seed, progress=False)
        runs.append(weights(model))
    assert_same_weights(runs[0], runs[1])
    assert not np.array_equal(runs[0]["5.weight"], runs[2]["5.weight"])


def test_fit_learns_and_writes_checkpoint_and_history(tmp_path):
    model, loader, optimizer, scheduler, val = make_run(augment=False)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optimizer, scheduler, checkpoint_dir=tmp_path, progress=False,
                      meta={"model": "tiny"})
    hist = trainer.fit(loader, 4, val_loader=val)
    assert hist["val_accuracy"][-1] >= 0.9 and hist["epoch"] == [1, 2, 3, 4]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_top5", "lr", "time"} <= set(hist.keys)
    for name in (LAST, "best.npz", "history.csv", "history.json"):
        assert (tmp_path / name).is_file()
    state, extra = load_checkpoint(tmp_path / LAST)
    assert_same_weights(state, weights(model))
    assert extra["epoch"] == 4 and extra["meta"] == {"model": "tiny"} and len(extra["history"]) == 4
    res = evaluate(model, val)
    assert res.accuracy == pytest.approx(hist["val_accuracy"][-1]) and res.confusion_matrix.sum() == 32
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in val])
    with cv.no_grad():
        logits = model.eval()(cv.tensor(np.concatenate(xs))).numpy()
    assert res.accuracy == pytest.approx(accuracy(logits, np.concatenate(ys)))


def test_early_stopping_stops_after_patience():
    model, loader, optimizer, _, _ = make_run(augment=False, sched="none")
    optimizer.param_groups[0]["lr"] = 0.0  # the weights never change: no improvement after epoch 1
    stopper = EarlyStopping("train_loss", patience=2, min_delta=0.1)  # dropout noise stays far below 0.1
    hist = fit(model, loader, None, optimizer, 10, early_stopping=stopper, progress=False)
    assert len(hist) == 3 and stopper.stopped_epoch == 3 and stopper.best_epoch == 1


def test_early_stopping_unit_and_errors():
    es = EarlyStopping("val_accuracy", patience=1)
    assert es.mode == "max"
    assert [es.step({"val_accuracy": v}, i) for i, v in enumerate([0.5, 0.6, 0.6, 0.7, 0.7, 0.7])] == \
        [False, False, True, False, True, True]
    with pytest.raises(KeyError, match="'val_loss' is not in the epoch record"):
        EarlyStopping().step({"train_loss": 1.0}, 1)
    with pytest.raises(ValueError, match="`patience` must be a non-negative int"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="`mode` must be"):
        EarlyStopping(mode="up")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fit_errors(tmp_path):
    model, loader, optimizer, _, _ = make_run()
    with pytest.raises(ValueError, match="`epochs` must be a positive int"):
        fit(model, loader, None, optimizer, 0)
    with pytest.raises(FileNotFoundError, match="cannot resume, no checkpoint"):
        fit(model, loader, None, optimizer, 1, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="needs a `checkpoint_dir`"):
        fit(model, loader, None, optimizer, 1, resume=True)
    with pytest.raises(ValueError, match="unknown `metrics`"):
        Trainer(model, None, optimizer, metrics=("f1",))
    optimizer.param_groups[0]["lr"] = 1e30
    with pytest.raises(FloatingPointError, match="fit: at epoch 1, batch 2 the loss is nan; the model's output"):
        fit(model, loader, None, optimizer, 3, progress=False)


def test_progress_bar_shows_metrics(monkeypatch):
    import io

    monkeypatch.setenv("COLUMNS", "160")
    assert not progress_enabled(None, io.StringIO()) and progress_enabled(True) and not progress_enabled(False)
    stream = io.StringIO()
    bar = EpochProgress(2, "epoch 1/1", True, stream=stream)
    bar.update(0.5, 3, 4)
    bar.update(0.25, 4, 4)
    bar.close({"val_accuracy": 0.9})
    out = stream.getvalue()
    assert "loss=0.3750" in out and "acc=0.8750" in out and "img/s=" in out and "val_accuracy=0.9000" in out


def test_seeded_runs_identical_with_threaded_convolutions():
    from convolve import _threads, models

    def run():
        cv.manual_seed(0)
        model = models.get_model("lenet5", activation="relu")
        optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        data_rng = np.random.default_rng(0)
        for _ in range(3):
            x = cv.tensor(data_rng.random((128, 1, 32, 32), dtype=np.float32))
            y = cv.tensor(data_rng.integers(0, 10, 128))
            optimizer.zero_grad()
            nn.CrossEntropyLoss()(model(x), y).backward()
            optimizer.step()
        return weights(model)

    _threads.set_num_threads(2)
    try:
        runs = [run() for _ in range(3)]
    finally:
        _threads.set_num_threads(None)
    assert_same_weights(runs[0], runs[1])
    assert_same_weights(runs[0], runs[2])
