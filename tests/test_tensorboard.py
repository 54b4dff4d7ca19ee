"""The TensorBoard callback, read back with TensorBoard's own EventAccumulator: per-epoch and per-step scalars,
weight and gradient histograms, the first layer's filters as an image, and the hyperparameters."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                        reason="tensorboard (the reader) is not installed")

import convolve as cv  # noqa: E402
from convolve import nn, optim  # noqa: E402
from convolve.models import digits_cnn  # noqa: E402
from convolve.train import TensorBoard, Trainer, fit  # noqa: E402
from convolve.train.tensorboard import filter_grid  # noqa: E402


def _loader(n: int = 48, batch: int = 8) -> list[tuple[cv.Tensor, cv.Tensor]]:
    """Batches of random 8x8 images and labels (a list: fit takes any iterable, len() gives batches per epoch)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, n)
    return [(cv.tensor(x[i:i + batch]), cv.tensor(y[i:i + batch])) for i in range(0, n, batch)]


def _read(log_dir) -> event_accumulator.EventAccumulator:
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0,
                                                                          "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_fit_logs_scalars_histograms_filters_and_hparams(tmp_path) -> None:
    cv.manual_seed(0)
    model = digits_cnn()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    board = TensorBoard(tmp_path / "tb", log_every_n_steps=2, hparams={"batch_size": 8})
    history = fit(model, _loader(), None, opt, epochs=2, val_loader=_loader(16), callbacks=[board], progress=False)
    board.close()
    acc = _read(tmp_path / "tb")
    tags = acc.Tags()

    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
        events = acc.Scalars(f"epoch/{name}")
        assert [e.step for e in events] == [1, 2]
        np.testing.assert_allclose([e.value for e in events], history[name] if name != "lr" else [0.05, 0.05],
                                   rtol=1e-6)
    steps = acc.Scalars("step/loss")  # 6 batches per epoch, every 2nd step
    assert [e.step for e in steps] == [2, 4, 6, 8, 10, 12]
    np.testing.assert_allclose([e.value for e in acc.Scalars("step/lr")], 0.05, rtol=1e-6)
    assert all(0 <= e.value <= 1 for e in acc.Scalars("step/accuracy"))

    params = dict(model.named_parameters())
    for name in params:
        assert f"weights/{name}" in tags["histograms"] and f"gradients/{name}" in tags["histograms"]
    last = acc.Histograms(f"weights/{next(iter(params))}")[-1]
    assert last.step == 2 and last.histogram_value.num == next(iter(params.values())).numel()
    np.testing.assert_allclose(last.histogram_value.sum, next(iter(params.values())).numpy().sum(), rtol=1e-4)

    (image_tag,) = [t for t in tags["images"] if t.startswith("filters/")]
    image = acc.Images(image_tag)[-1]
    k = params[image_tag.split("/", 1)[1] + ".weight"].shape[0]
    assert image.width == 8 * 4 + 1 and image.height == ((k + 7) // 8) * 4 + 1  # 3x3 filters, 1-pixel borders

    from tensorboard.plugins.hparams import plugin_data_pb2

    contents = acc.PluginTagToContent("hparams")
    session = [plugin_data_pb2.HParamsPluginData.FromString(c).session_start_info for c in contents.values()]
    hp = next(s.hparams for s in session if s.hparams)
    assert hp["optimizer"].string_value == "SGD" and hp["lr"].number_value == pytest.approx(0.05)
    assert hp["momentum"].number_value == pytest.approx(0.9) and hp["batch_size"].number_value == 8
    assert hp["parameters"].number_value == sum(p.numel() for p in params.values())


def test_trainer_without_length_counts_steps_and_can_skip_parts(tmp_path) -> None:
    cv.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    board = TensorBoard(tmp_path, log_every_n_steps=1, histograms=False, images=False)
    trainer = Trainer(model, None, optim.Adam(model.parameters(), lr=1e-3), callbacks=[board], progress=False)
    trainer.fit(iter(list(_loader(16))), epochs=1)
    board.close()
    acc = _read(tmp_path)
    assert [e.step for e in acc.Scalars("step/loss")] == [1, 2]
    assert not acc.Tags()["histograms"] and not acc.Tags()["images"]


def test_filter_grid_and_bad_arguments(tmp_path) -> None:
    weight = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    grid = filter_grid(weight)
    assert grid.shape == (4, 7, 3) and grid.min() == 0 and grid.max() == 1
    np.testing.assert_allclose(grid[1:3, 1:3, 0], [[0, 1 / 11], [2 / 11, 3 / 11]], rtol=1e-6)
    with pytest.raises(ValueError, match="log_every_n_steps"):
        TensorBoard(tmp_path, log_every_n_steps=-1)
