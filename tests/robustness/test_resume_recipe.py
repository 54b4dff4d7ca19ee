"""`convolve train --resume` reuses the recipe stored in the run: the README's commands run verbatim on a tiny
fake MNIST, a resume with no flags continues exactly, a larger --epochs rebuilds the schedule for the new length,
and any other changed flag is refused by name."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from convolve import _atomic
from convolve.cli import main
from convolve.cli.images import write_png
from convolve.data.idx import write_idx
from convolve.train import History, load_checkpoint

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands(section: str) -> list[str]:
    """The `convolve ...` commands of the first bash block after `section`, continuation lines joined."""
    text = README.read_text()
    block = text[text.index(section):].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = block.replace("\\\n", " ").splitlines()
    return [re.sub(r"\s+#.*$", "", line).strip() for line in lines if line.startswith("convolve ")]


def write_fake_mnist(root: Path, n_train: int = 48, n_test: int = 16) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):  # a learnable bright bar per class
            images[i, 2 + 2 * k : 4 + 2 * k, 4:24] = 255
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)


def run(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def interrupt_after_epoch(epoch: int):
    """A fault hook that raises KeyboardInterrupt (Ctrl-C) once `epoch`'s last write is done."""
    seen = []

    def hook(label):
        seen.append(label)
        if label.startswith("history.json: renamed") and len([s for s in seen if s == label]) == epoch:
            raise KeyboardInterrupt
    return hook


def assert_same_weights(a_dir, b_dir):
    a, _ = load_checkpoint(a_dir / "last.npz")
    b, _ = load_checkpoint(b_dir / "last.npz")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_readme_train_evaluate_predict_resume_verbatim(capsys, tmp_path, monkeypatch):
    commands = [c for c in readme_commands("## Train, evaluate, predict") if "/path/to/mnist" in c or "runs/" in c]
    assert [shlex.split(c)[1] for c in commands] == ["train", "evaluate", "predict", "train"], commands
    assert commands[-1].endswith("--resume")
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    write_fake_mnist(data_dir)
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "digit.png", np.zeros((28, 28), np.uint8))
    argv = [shlex.split(c.replace("/path/to/mnist", str(data_dir)))[1:] for c in commands]
    monkeypatch.setattr(_atomic, "fault_hook", interrupt_after_epoch(2))
    code, out, err = run(capsys, argv[0])
    # interrupted (Ctrl-C) after epoch 2 was written, before its line was printed
    assert code == 130 and "epoch 1:" in out and "epoch 3:" not in out and "--resume" in err
    monkeypatch.setattr(_atomic, "fault_hook", None)
    code, out, err = run(capsys, argv[3])  # the README's resume line, verbatim
    assert code == 0, err
    assert "resuming lenet5 on mnist after epoch 2" in out and "epoch 3:" in out and "epoch 15:" in out
    assert "epoch 2:" not in out and "adamw lr 0.003" in out
    for args in argv[1:3]:
        code, out, err = run(capsys, args)
        assert code == 0, err
    assert run(capsys, [*argv[0][:-2], "--out", tmp_path / "uninterrupted"])[0] == 0
    assert_same_weights(tmp_path / "runs" / "lenet5-mnist", tmp_path / "uninterrupted")


DIGITS = ["train", "--batch-size", "256", "--no-progress"]


def test_resume_continues_the_stored_recipe_exactly(capsys, tmp_path):
    recipe = ["--optimizer", "sgd", "--lr", "0.05", "--schedule", "step", "--seed", "3", "--augment"]
    assert run(capsys, [*DIGITS, *recipe, "--epochs", "2", "--out", tmp_path / "full"])[0] == 0
    assert run(capsys, [*DIGITS, *recipe, "--epochs", "1", "--out", tmp_path / "cut"])[0] == 0
    code, out, err = run(capsys, ["train", "--out", tmp_path / "cut", "--resume", "--epochs", "2"])
    assert code == 0, err
    assert "sgd lr 0.05, step" in out and "epoch 2:" in out and "epoch 1:" not in out
    assert_same_weights(tmp_path / "full", tmp_path / "cut")


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "step"])
def test_larger_epochs_rebuild_the_schedule_for_the_new_length(capsys, tmp_path, schedule):
    base = [*DIGITS, "--schedule", schedule]
    assert run(capsys, [*base, "--epochs", "1", "--out", tmp_path / "ext"])[0] == 0
    code, _, err = run(capsys, ["train", "--out", tmp_path / "ext", "--resume", "--epochs", "2"])
    assert code == 0, err
    assert run(capsys, [*base, "--epochs", "2", "--out", tmp_path / "planned"])[0] == 0
    ext = History.load_json(tmp_path / "ext" / "history.json")
    planned = History.load_json(tmp_path / "planned" / "history.json")
    assert ext["epoch"] == [1, 2]
    assert ext["lr"][1:] == planned["lr"][1:]  # from the resumed epoch on, the 2-epoch plan's learning rates
    _, e = load_checkpoint(tmp_path / "ext" / "last.npz")
    _, p = load_checkpoint(tmp_path / "planned" / "last.npz")
    assert e["optimizer"]["param_groups"] == p["optimizer"]["param_groups"]
    assert e["meta"]["recipe"]["epochs"] == 2


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    assert main([*DIGITS, "--epochs", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("flags, named", [
    (["--lr", "0.5"], ["--lr 0.5", "(the run has 0.01)"]),
    (["--schedule", "cosine", "--batch-size", "32"], ["--schedule cosine", "--batch-size 32"]),
    (["--option", "activation=relu"], ["--option activation=relu"]),
    (["--epochs", "1"], ["--epochs 1 is fewer than the 2 epochs"]),
])
def test_flags_that_would_change_a_resumed_run_are_refused_by_name(capsys, finished_run, flags, named):
    code, _, err = run(capsys, ["train", "--out", finished_run, "--resume", *flags])
    assert code == 1 and all(n in err for n in named), err


def test_resume_alone_or_repeating_the_stored_flags_is_accepted(capsys, finished_run):
    for flags in ([], ["--epochs", "2", "--optimizer", "adam", "--batch-size", "256", "--dataset", "digits"]):
        code, out, err = run(capsys, ["train", "--out", finished_run, "--resume", *flags])
        assert code == 0 and "resuming digits_cnn on digits after epoch 2" in out and "epoch 3" not in out, err


def test_train_refuses_data_dir_for_digits_and_an_unwritable_out(capsys, tmp_path):
    code, _, err = run(capsys, ["train", "--data-dir", tmp_path, "--out", tmp_path / "r"])
    assert code == 1 and "--data-dir does not apply to the bundled digits" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = run(capsys, ["train", "--out", blocker / "run"])
    assert code == 1 and f"cannot write into the output folder {blocker / 'run'}" in err and "epoch" not in out


def test_resume_without_a_checkpoint_says_how_to_start(capsys, tmp_path):
    code, _, err = run(capsys, ["train", "--out", tmp_path, "--resume"])
    assert code == 1 and "cannot resume, no checkpoint" in err and "without --resume" in err
