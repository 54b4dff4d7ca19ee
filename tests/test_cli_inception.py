"""The command line's pieces of the Inception recipe (RMSprop decay/epsilon, label smoothing, gradient clipping,
auxiliary loss weight) and `convolve summary` of several models (the ablation-ladder table)."""

from __future__ import annotations

import pytest

from convolve.cli import main
from convolve.train import load_checkpoint


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_with_the_papers_rmsprop_label_smoothing_and_clipping(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--epochs", "1", "--out", tmp_path, "--optimizer", "rmsprop",
                         "--alpha", "0.9", "--eps", "1.0", "--label-smoothing", "0.1", "--clip-grad-norm", "2.0",
                         "--schedule", "none", "--no-progress")
    assert code == 0, err
    _, extra = load_checkpoint(tmp_path / "last.npz")
    group = extra["optimizer"]["param_groups"][0]
    assert (group["alpha"], group["eps"], group["momentum"]) == (0.9, 1.0, 0.9)
    recipe = extra["meta"]["recipe"]
    assert (recipe["clip_grad_norm"], recipe["label_smoothing"], recipe["aux_weight"]) == (2.0, 0.1, None)


@pytest.mark.parametrize(("argv", "needle"), [
    (["--optimizer", "adam", "--alpha", "0.9"], "--alpha is a setting of --optimizer rmsprop, not of adam"),
    (["--optimizer", "sgd", "--eps", "1.0"], "--eps is a setting of --optimizer adam / adamw / rmsprop, not of sgd"),
    (["--aux-weight", "0.4"], "`aux_weight` (=0.4) was given but DigitsCNN returned no auxiliary logits"),
    (["--clip-grad-norm", "0"], "argument --clip-grad-norm: must be a number > 0, got 0"),
])
def test_recipe_flag_errors(capsys, tmp_path, argv, needle):
    code, _, err = run(capsys, "train", "--epochs", "1", "--out", tmp_path, "--no-progress", *argv)
    assert code != 0 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_summary_of_several_models_is_a_comparison_table(capsys):
    code, out, err = run(capsys, "summary", "lenet5", "lenet5:activation=relu,partial_c3=true", "digits_cnn")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("| model | input | params | Δ params | MACs |") and len(lines) == 5
    assert lines[3].startswith("| `lenet5:activation=relu,partial_c3=true` | 1x32x32 | 60,806 | -900 |")
    code, _, err = run(capsys, "summary", "lenet5:partial_c3")
    assert code == 2 and "expected KEY=VALUE, got 'partial_c3'" in err
    code, _, err = run(capsys, "summary", "lenet5:colour=red")
    assert code == 1 and "has no option 'colour'" in err
