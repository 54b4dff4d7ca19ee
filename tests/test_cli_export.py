"""`convolve export` (ONNX and safetensors, from a run or a zoo name) and `convolve train --tensorboard`."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")

import convolve as cv
from convolve.cli import main
from convolve.train.model_files import load_model

from .onnx_helpers import assert_scaled_close, session


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory):
    """One 1-epoch digits run with TensorBoard logs."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "1", "--out", str(out / "run"), "--tensorboard", str(out / "tb"),
                 "--no-progress"]) == 0
    return out


def test_train_writes_tensorboard_logs(tb_run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_run / "tb"))
    acc.Reload()
    assert {"epoch/train_loss", "epoch/val_accuracy", "epoch/lr"} <= set(acc.Tags()["scalars"])
    assert any(t.startswith("filters/") for t in acc.Tags()["images"])
    assert acc.PluginTagToContent("hparams"), "no hyperparameters written"


def test_export_run_to_onnx_matches_the_checkpoint(capsys, tb_run) -> None:
    path = tb_run / "digits.onnx"
    code, out, _ = run(capsys, "export", tb_run / "run", "--out", path, "--check")
    assert code == 0 and f"wrote {path}" in out and "input (N, 1, 8, 8)" in out
    assert "onnxruntime matches convolve" in out
    model, _ = load_model(str(tb_run / "run"))
    x = np.random.default_rng(1).standard_normal((5, 1, 8, 8)).astype(np.float32)
    (got,) = session(path.read_bytes()).run(None, {"input": x})
    with cv.no_grad():
        assert_scaled_close(got, model(cv.tensor(x)).numpy(), "exported run")


def test_export_run_to_safetensors(capsys, tb_run) -> None:
    path = tb_run / "weights.safetensors"
    code, out, _ = run(capsys, "export", tb_run / "run", "--out", path)
    assert code == 0 and "tensors" in out
    model, _ = load_model(str(tb_run / "run"))
    state = cv.load_safetensors(path)
    assert set(state) == set(model.state_dict())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(state[key].numpy(), value.numpy())


def test_export_zoo_model_static_batch(capsys, tmp_path) -> None:
    code, out, _ = run(capsys, "export", "lenet5", "--out", tmp_path / "l.onnx", "--static-batch", "--opset", "19",
                       "--num-classes", "7")
    assert code == 0 and "input (1, 1, 32, 32)" in out and "opset 19" in out
    outputs = session((tmp_path / "l.onnx").read_bytes()).get_outputs()
    assert outputs[0].shape == [1, 7]


@pytest.mark.parametrize("argv,needle", [
    (["export", "no_such_model", "--out", "x.onnx"], "unknown model 'no_such_model'"),
    (["export", "lenet5", "--out", "x.pt"], "--out must end in .onnx or .safetensors"),
    (["export", "lenet5"], "--out"),
])
def test_export_errors_are_one_line(capsys, tmp_path, argv, needle) -> None:
    code, _, err = run(capsys, *argv)
    assert code != 0 and len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err
