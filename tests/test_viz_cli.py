"""`convolve visualize ...`: every view writes its picture; bad layers, units and images are clear errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

import convolve as cv
from convolve import models
from convolve.cli.parser import Parser, UsageError
from convolve.cli.visualize import add_visualize_parser, cmd_visualize
from convolve.data.images import write_png
from convolve.train import History, save_checkpoint

pytest.importorskip("matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


def run(argv: list[str]) -> int:
    """Parse with the real `Parser` class plus `add_visualize_parser`, as `convolve` will once it is wired."""
    parser = Parser(prog="convolve")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    add_visualize_parser(sub)
    args = parser.parse_args(argv)
    return cmd_visualize(args)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A digits_cnn checkpoint (random weights) with the metadata `convolve train` stores, and a history."""
    out = tmp_path_factory.mktemp("run")
    cv.manual_seed(0)
    model = models.get_model("digits_cnn")
    meta = {"model": "digits_cnn", "model_options": {}, "num_classes": 10, "dataset": "digits",
            "classes": [str(i) for i in range(10)], "image_shape": [1, 8, 8], "pixel_max": 16, "pad": 0,
            "input_size": [1, 8, 8], "mean": [0.3], "std": [0.37]}
    save_checkpoint(out / "last.npz", model.state_dict(), {"meta": meta})
    h = History()
    for e in range(1, 4):
        h.append({"epoch": e, "lr": 0.01, "train_loss": 1 / e, "train_accuracy": 0.3 * e, "val_loss": 1.2 / e,
                  "val_accuracy": 0.25 * e})
    h.save(out)
    return out


def written(capsys, out: Path) -> Path:
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("wrote ")
    path = Path(line[len("wrote "):])
    assert path.parent == out and path.read_bytes()[:8] == PNG and path.stat().st_size > 1000
    return path


@pytest.mark.parametrize("view,extra,name", [
    ("filters", [], "filters-features_0.png"),
    ("filters", ["--layer", "features.2"], "filters-features_2.png"),
    ("features", ["--test-index", "5"], "features.png"),
    ("features", ["--test-index", "5", "--layers", "features.1,features.4", "--max-channels", "4"], "features.png"),
    ("receptive-field", ["--test-index", "0"], "receptive-field-features_2-0-4-4.png"),
    ("receptive-field", ["--test-index", "0", "--layer", "features.4", "--unit", "3", "1", "2"],
     "receptive-field-features_4-3-1-2.png"),
    ("saliency", ["--test-index", "1", "--target", "7"], "saliency.png"),
    ("gradcam", ["--test-index", "1"], "gradcam-features_3.png"),  # the ReLU after the last conv
    ("confusion", ["--normalize"], "confusion.png"),
])
def test_checkpoint_views(tmp_path, capsys, run_dir, view, extra, name):
    assert run(["visualize", view, str(run_dir), "--out", str(tmp_path), "--dpi", "40", *extra]) == 0
    assert written(capsys, tmp_path).name == name


def test_image_files_curves_and_demo(tmp_path, capsys, run_dir):
    digit = np.zeros((8, 8), np.uint8)
    digit[1:7, 3:5] = 255
    write_png(tmp_path / "one.png", digit)
    np.save(tmp_path / "one.npy", digit.astype(np.int64) // 16)
    for image in ("one.png", "one.npy"):
        assert run(["visualize", "saliency", str(run_dir / "last.npz"), "--image", str(tmp_path / image),
                    "--out", str(tmp_path), "--dpi", "40"]) == 0
        written(capsys, tmp_path)
    assert run(["visualize", "curves", str(run_dir / "history.csv"), "--out", str(tmp_path), "--dpi", "40"]) == 0
    assert written(capsys, tmp_path).name == "curves.png"
    assert run(["visualize", "filters-demo", "--image", str(tmp_path / "one.png"), "--out", str(tmp_path)]) == 0
    assert written(capsys, tmp_path).name == "filters-demo.png"
    assert run(["visualize", "filters-demo", "--out", str(tmp_path / "svg"), "--format", "svg"]) == 0
    assert (tmp_path / "svg" / "filters-demo.svg").read_bytes().find(b"<svg") >= 0


def test_bad_input_lists_the_valid_choices(tmp_path, run_dir):
    base = ["--out", str(tmp_path)]
    with pytest.raises(ValueError, match=r"layer 'classifier\.0' \(Linear\) is not a 2-D convolution; valid conv "
                                         r"layers: features\.0, features\.2"):
        run(["visualize", "filters", str(run_dir), "--layer", "classifier.0", *base])
    with pytest.raises(ValueError, match=r"no layer 'conv9'; valid layers: features, features\.0, features\.1"):
        run(["visualize", "gradcam", str(run_dir), "--test-index", "0", "--layer", "conv9", *base])
    with pytest.raises(ValueError, match=r"`channel` must be in \[0, 32\) for layer 'features\.2'"):
        run(["visualize", "receptive-field", str(run_dir), "--test-index", "0", "--unit", "40", "0", "0", *base])
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((12, 12)))
    with pytest.raises(ValueError, match=r"big\.npy: expected a 1-channel 8x8 image for digits_cnn \(digits\), got 1 "
                                         r"channel of 12x12"):
        run(["visualize", "saliency", str(run_dir), "--image", str(big), *base])
    with pytest.raises(ValueError, match=r"--test-index must be in \[0, \d+\) for the digits test split"):
        run(["visualize", "features", str(run_dir), "--test-index", "100000", *base])
    with pytest.raises(UsageError, match="one of the arguments --image --test-index is required"):
        run(["visualize", "saliency", str(run_dir), *base])
    with pytest.raises(UsageError, match="invalid choice: 'weights'"):
        run(["visualize", "weights", str(run_dir)])


def test_parser_is_added_as_a_subcommand():
    sub = argparse.ArgumentParser().add_subparsers()
    assert add_visualize_parser(sub).prog.endswith("visualize")


def test_default_layer_skips_1x1_maps_and_main_reports_errors_in_one_line(tmp_path, capsys):
    """LeNet-5's c5 has 1x1 maps: Grad-CAM defaults to act3 (the ReLU after c3); `convolve` errors: one line, 1 or 2."""
    from convolve.cli import main

    cv.manual_seed(0)
    meta = {"model": "lenet5", "model_options": {}, "num_classes": 10, "dataset": "digits",
            "classes": [str(i) for i in range(10)], "image_shape": [1, 8, 8], "pixel_max": 16, "pad": 12,
            "input_size": [1, 32, 32], "mean": [0.3], "std": [0.37]}
    ckpt = save_checkpoint(tmp_path / "lenet.npz", models.get_model("lenet5").state_dict(), {"meta": meta})
    assert main(["visualize", "gradcam", str(ckpt), "--test-index", "2", "--out", str(tmp_path), "--dpi", "40"]) == 0
    assert written(capsys, tmp_path).name == "gradcam-act3.png"
    assert main(["visualize", "filters", str(ckpt), "--layer", "s2", "--out", str(tmp_path)]) == 1
    assert "layer 's2' (AvgPool2d) is not a 2-D convolution; valid conv layers: c1, c3, c5" in capsys.readouterr().err
    assert main(["visualize", "filters"]) == 2
    assert "the following arguments are required: checkpoint" in capsys.readouterr().err


def test_wired_into_the_convolve_command(tmp_path, capsys, run_dir):
    from convolve.cli import main

    assert main(["visualize", "filters", str(run_dir), "--layer", "features.0", "--out", str(tmp_path)]) == 0
    assert written(capsys, tmp_path).name == "filters-features_0.png"
    assert main(["visualize", "filters", str(run_dir), "--layer", "flatten", "--out", str(tmp_path)]) == 1
    assert "valid conv layers: features.0, features.2" in capsys.readouterr().err
