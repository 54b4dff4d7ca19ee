"""Cases that used to pass silently or fail unclearly: each now raises (or warns) naming what is wrong."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch

import convolve as cv
from convolve import nn, optim
from convolve.cli import main
from convolve.models import get_model
from convolve.train import Trainer, evaluate, load_checkpoint
from convolve.train.guards import TrainingWarning
from convolve.viz.curves import load_history

# ----- optimizers, tensors, losses -------------------------------------------------------------------------
P = [cv.zeros(3, requires_grad=True)]
BAD = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("make, option", [
    (lambda v: optim.SGD(P, lr=v), "lr"),
    (lambda v: optim.SGD(P, lr=0.1, momentum=v), "momentum"),
    (lambda v: optim.SGD(P, lr=0.1, weight_decay=v), "weight_decay"),
    (lambda v: optim.Adam(P, lr=v), "lr"),
    (lambda v: optim.Adam(P, eps=v), "eps"),
    (lambda v: optim.Adam(P, betas=(v, 0.999)), "betas[0]"),
    (lambda v: optim.AdamW(P, weight_decay=v), "weight_decay"),
    (lambda v: optim.RMSprop(P, lr=0.01, momentum=v), "momentum"),
])
@pytest.mark.parametrize("value", BAD)
def test_optimizer_hyperparameters_must_be_finite(make, option, value):
    with pytest.raises(ValueError, match=rf"`{re.escape(option)}` must be (a finite number|in \[0.0, 1.0\))"):
        make(value)


def test_adam_nan_lr_is_refused_as_pytorch():
    with pytest.raises(ValueError):
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=math.nan)
    with pytest.raises(ValueError, match="Adam: `lr` must be a finite number, got nan"):
        optim.Adam(P, lr=math.nan)


@pytest.mark.parametrize("data, kind", [
    (np.array(["a", "b"]), "strings"),
    (np.array([1, None], dtype=object), "Python objects"),
    (np.array([b"x"]), "bytes"),
    (["1", "2"], "strings"),
])
def test_tensor_refuses_object_and_string_arrays(data, kind):
    for build in (cv.tensor, cv.Tensor):
        with pytest.raises(TypeError, match=f"cannot build a tensor from an array of dtype .* \\({kind}\\)"):
            build(data)


def test_binary_cross_entropy_refuses_targets_outside_0_1_as_pytorch():
    with pytest.raises(RuntimeError, match="target should be between 0 and 1"):
        torch.nn.functional.binary_cross_entropy(torch.tensor([0.5]), torch.tensor([2.0]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: `target` values must be in \[0, 1\], got min 0.0, "
                                         r"max 2.0"):
        nn.functional.binary_cross_entropy(cv.tensor([0.5, 0.5]), cv.tensor([0.0, 2.0]))


# ----- the training loop -----------------------------------------------------------------------------------
def tiny_run(images=None, loss_fn=None, lr=0.1, opt=optim.SGD):
    cv.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((32, 1, 4, 4)).astype(np.float32) if images is None else images
    y = rng.integers(0, 3, 32)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    loader = [(cv.tensor(x[i:i + 8]), cv.tensor(y[i:i + 8])) for i in range(0, 32, 8)]
    trainer = Trainer(model, loss_fn, opt(model.parameters(), lr=lr), progress=False)
    return trainer, loader


def weights(model):
    return {k: np.array(v.data) for k, v in model.state_dict().items()}


def test_nan_input_stops_before_the_step_and_names_the_data():
    images = np.random.default_rng(1).random((32, 1, 4, 4)).astype(np.float32)
    images[3, 0, 1, 1] = np.nan  # in the first batch
    trainer, loader = tiny_run(images)
    before = weights(trainer.model)
    with pytest.raises(FloatingPointError, match=r"fit: at epoch 1, batch 1 the loss is nan; the input batch holds "
                                                 r"NaN or inf values: check the data.*not updated"):
        trainer.fit(loader, 1)
    after = weights(trainer.model)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_nan_from_the_loss_function_is_named():
    trainer, loader = tiny_run(loss_fn=lambda out, y: (out * math.nan).sum())
    with pytest.raises(FloatingPointError, match="the loss function returned it for finite outputs"):
        trainer.fit(loader, 1)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_gradient_with_a_finite_loss_stops_before_the_step():
    trainer, loader = tiny_run(loss_fn=lambda out, y: (out * 0).sqrt().sum())  # loss 0, d sqrt(0) = inf -> nan
    before = weights(trainer.model)
    with pytest.raises(FloatingPointError, match=r"the gradient of parameter 0 \(shape \(3, 16\)\) holds NaN or inf "
                                                 r"although the loss is finite \(0\)"):
        trainer.fit(loader, 1)
    for k, v in weights(trainer.model).items():
        np.testing.assert_array_equal(before[k], v)


def test_an_exploding_finite_loss_warns_once():
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        scale = 1.0 if len(calls) == 1 else 1e20
        return nn.functional.cross_entropy(out, y) * scale

    trainer, loader = tiny_run(loss_fn=loss_fn, lr=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(loader, 2)
    growth = [w for w in caught if issubclass(w.category, TrainingWarning)]
    assert len(growth) == 1 and "batch 2 the training loss is" in str(growth[0].message)
    assert "over 100 times its first value" in str(growth[0].message)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_evaluate_refuses_non_finite_inputs_and_outputs():
    trainer, loader = tiny_run()
    bad = [(x * math.nan, y) for x, y in loader]
    with pytest.raises(FloatingPointError, match="evaluate: at batch 1 the loss is nan; the input batch holds NaN"):
        evaluate(trainer.model, bad)
    trainer.model[1].weight.data[0, 0] = math.inf
    with pytest.raises(FloatingPointError, match=r"evaluate: at batch 1 .*the model's output holds NaN or inf"):
        evaluate(trainer.model, loader)


def test_restore_is_all_or_nothing(tmp_path):
    adam, loader = tiny_run(opt=optim.Adam, lr=0.01)
    adam.fit(loader, 1)
    adam.save_checkpoint(tmp_path / "adam.npz")
    sgd, _ = tiny_run(opt=optim.SGD)
    sgd.model[1].weight.data[...] = 7.0
    before, opt_before = weights(sgd.model), sgd.optimizer.state_dict()
    with pytest.raises(ValueError, match=r"cannot restore .*adam.npz: .*another optimizer.*unchanged"):
        sgd.restore(tmp_path / "adam.npz")
    for k, v in weights(sgd.model).items():
        np.testing.assert_array_equal(before[k], v)
    assert sgd.optimizer.state_dict() == opt_before and sgd.epoch == 0


# ----- zoo input sizes, output folders, file names ---------------------------------------------------------
def test_zoo_model_names_itself_and_its_native_size_before_any_layer_runs():
    model = get_model("lenet5")
    calls = []
    model.c1.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError, match=r"lenet5: expects input \(N, 1, 32, 32\) \(native size 1x32x32\), got shape "
                                         r"\(2, 1, 28, 28\)"):
        model(cv.zeros(2, 1, 28, 28))
    assert calls == []
    with pytest.raises(ValueError, match=r"resnet18: expects input \(N, 3, H, W\)"):
        get_model("resnet18", num_classes=2)(cv.zeros(1, 1, 40, 40))


def test_summary_with_a_wrong_input_size_names_the_model(capsys):
    assert main(["summary", "lenet5", "--input-size", "1", "28", "28"]) == 1
    err = capsys.readouterr().err
    assert "lenet5: expects input (N, 1, 32, 32)" in err and len(err.strip().splitlines()) == 1


def test_save_errors_name_the_users_path_not_a_temporary_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError) as info:
        cv.save({"a": cv.zeros(2)}, blocker / "ckpt.npz")
    assert str(blocker / "ckpt.npz") in str(info.value) and ".tmp-" not in str(info.value)


def test_trainer_checks_its_output_folder_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    trainer, loader = tiny_run()
    trainer.checkpoint_dir = blocker / "run"
    before = weights(trainer.model)
    with pytest.raises(OSError, match="cannot write into the output folder"):
        trainer.fit(loader, 1)
    for k, v in weights(trainer.model).items():
        np.testing.assert_array_equal(before[k], v)


def test_truncated_history_files_are_refused(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,train_loss,val_loss\r\n1,0.5,0.6\r\n2,0.4")
    with pytest.raises(ValueError, match="line 3 has not the 3 fields of its header"):
        load_history(tmp_path / "history.csv")
    (tmp_path / "history.json").write_text('{"epoch": [1, 2], "train_loss": [0.5')
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_history(tmp_path / "history.json")


# ----- predict ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "1", "--batch-size", "256", "--out", str(out), "--no-progress"]) == 0
    return out


def predict(capsys, run, image):
    code = main(["predict", str(run), str(image)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("values, words", [
    (np.full((8, 8), np.nan), ["holds 64 NaN or inf values"]),
    (np.full((8, 8), 200.0), ["holds floats in [200, 200]", "divide by 255"]),
    (np.full((8, 8), -0.5), ["holds floats in [-0.5, -0.5]", "scaled to [0, 1]"]),
])
def test_predict_refuses_bad_float_images(capsys, tmp_path, digits_run, values, words):
    np.save(tmp_path / "x.npy", values)
    code, out, err = predict(capsys, digits_run, tmp_path / "x.npy")
    assert code == 1 and out == "" and all(w in err for w in words), err


def test_predict_refuses_a_zero_std_and_non_finite_weights(capsys, tmp_path, digits_run):
    np.save(tmp_path / "x.npy", np.zeros((8, 8), np.uint8))
    state, extra = load_checkpoint(digits_run / "last.npz")
    extra["meta"]["std"] = [0.0]
    cv.save({"model": state, "train": extra}, tmp_path / "std0.npz")
    code, _, err = predict(capsys, tmp_path / "std0.npz", tmp_path / "x.npy")
    assert code == 1 and "normalization is unusable" in err and "std [0.0]" in err
    extra["meta"]["std"] = [0.3]
    state = {k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for k, v in state.items()}
    cv.save({"model": state, "train": extra}, tmp_path / "nanw.npz")
    code, _, err = predict(capsys, tmp_path / "nanw.npz", tmp_path / "x.npy")
    assert code == 1 and "the model's output holds NaN or inf" in err


def test_predict_accepts_float_images_in_0_1(capsys, tmp_path, digits_run):
    np.save(tmp_path / "x.npy", np.full((8, 8), 0.5))
    code, out, _ = predict(capsys, digits_run, tmp_path / "x.npy")
    assert code == 0 and "x.npy:" in out and "nan" not in out


def test_early_stopping_min_delta_must_be_finite():
    from convolve.train import EarlyStopping

    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(ValueError, match="`min_delta` must be a finite number >= 0"):
            EarlyStopping(min_delta=bad)


def test_ascii_pgm_with_more_samples_than_declared_is_refused(tmp_path):
    from convolve.cli.images import read_image

    (tmp_path / "x.pgm").write_bytes(b"P2\n2 2\n255\n" + b"1 " * 100_000)
    with pytest.raises(ValueError, match="more than the 4 samples its header declares"):
        read_image(tmp_path / "x.pgm")


def test_download_into_a_file_names_the_folder(tmp_path):
    from convolve.data import download_file

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match=f"cannot write into the output folder {blocker / 'mnist'}"):
        download_file("f.gz", "0" * 32, blocker / "mnist", ["http://127.0.0.1:9/"], verbose=False)


def test_load_says_what_a_foreign_file_is(tmp_path):
    import pickle

    (tmp_path / "t.txt").write_text("hello")
    (tmp_path / "p.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match=r"not a .npz \(zip\) archive: starts with b'hello'"):
        cv.load(tmp_path / "t.txt")
    with pytest.raises(ValueError, match=r"a Python pickle \(never unpickled"):
        cv.load(tmp_path / "p.pkl")


def test_resume_warns_when_an_older_best_checkpoint_is_missing(tmp_path):
    trainer, loader = tiny_run(lr=0.0)  # the loss never improves after epoch 1: best.npz holds epoch 1
    trainer.checkpoint_dir = tmp_path
    trainer.fit(loader, 2)
    (tmp_path / "best.npz").unlink()
    again, _ = tiny_run(lr=0.0)
    again.checkpoint_dir = tmp_path
    with pytest.warns(TrainingWarning, match=r"best.npz \(the weights of epoch 1\) is missing"):
        again.fit(loader, 2, resume=True)
