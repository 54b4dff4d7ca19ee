"""The `convolve` argument parser: train, evaluate, predict, summary, visualize (`visualize.py`), models,
datasets."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from convolve import __version__
from convolve.cli.export import add_export_parser
from convolve.cli.learn import add_explain_parser, add_report_parser
from convolve.cli.visualize import CHECKPOINT_HELP, add_own_model_arguments, add_visualize_parser


class UsageError(Exception):
    """Bad command-line arguments (reported as one line, exit code 2)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, so `main` prints them) instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


def parse_option(text: str) -> tuple[str, Any]:
    """'key=value' -> (key, value) with value as int, float, bool, None or str (for --option)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    if lowered == "none":
        return key, None
    for cast in (int, float):
        try:
            return key, cast(raw)
        except ValueError:
            pass
    return key, raw


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def model_spec(text: str) -> tuple[str, dict[str, Any], str]:
    """'name' or 'name:key=value,key=value' -> (name, options, text), values as in --option (for `summary`)."""
    name, _, rest = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"expected NAME or NAME:KEY=VALUE,..., got {text!r}")
    return name, dict(parse_option(item) for item in rest.split(",")) if rest else {}, text


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a zoo model on a dataset (default: digits_cnn on the bundled digits)",
                       description="Train a model, checkpoint every epoch, report the test accuracy. With no "
                                   "arguments: digits_cnn on the bundled 8x8 digits, offline, in a few seconds.")
    p.add_argument("model", nargs="?", default=None, help="model name (see `convolve models`); default per dataset")
    p.add_argument("--dataset", default=None, help="dataset name (see `convolve datasets`); default digits")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset files (default $CONVOLVE_DATA/...)")
    p.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    p.add_argument("--epochs", type=positive_int, default=None, help="number of epochs (default per dataset)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="mini-batch size (default 64)")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw", "rmsprop"), default=None, help="default adam")
    p.add_argument("--lr", type=non_negative_float, default=None,
                   help="learning rate (peak lr for onecycle); default 0.05 for sgd, 1e-3 otherwise (x2/x10 on digits)")
    p.add_argument("--momentum", type=non_negative_float, default=None, help="SGD/RMSprop momentum (default 0.9)")
    p.add_argument("--weight-decay", type=non_negative_float, default=None, help="L2 weight decay (default 0)")
    p.add_argument("--alpha", type=non_negative_float, default=None,
                   help="RMSprop's smoothing constant (TensorFlow's and the Inception paper's decay; default 0.99)")
    p.add_argument("--eps", type=positive_float, default=None,
                   help="adam/adamw/rmsprop: the term added to the denominator (default 1e-8)")
    p.add_argument("--clip-grad-norm", type=positive_float, default=None, metavar="MAX",
                   help="clip the gradients' total 2-norm to MAX before each step (default: no clipping)")
    p.add_argument("--aux-weight", type=non_negative_float, default=None, metavar="W",
                   help="loss weight of auxiliary classifiers (googlenet, inception_*; default: the model's, "
                        "0.3 / 0.4)")
    p.add_argument("--schedule", choices=("none", "step", "cosine", "onecycle"), default=None,
                   help="learning-rate schedule (default onecycle, stepped per batch)")
    p.add_argument("--label-smoothing", type=non_negative_float, default=None,
                   help="cross-entropy label smoothing (default 0)")
    p.add_argument("--augment", action="store_true", default=None, help="random crops (and flips for colour images)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0): same seed, same weights")
    p.add_argument("--val-split", type=non_negative_float, default=None, metavar="F",
                   help="hold out a fraction F of the training images for validation (default 0: the per-epoch "
                        "figures are on the test split, reported only)")
    p.add_argument("--patience", type=positive_int, default=None, metavar="N",
                   help="early stopping: stop after N epochs without a better validation accuracy (needs --val-split)")
    p.add_argument("--out", default=None, help="output folder (default ./runs/<model>-<dataset>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.npz with its stored settings (a larger --epochs "
                        "extends it; other changed settings are refused)")
    p.add_argument("--option", action="append", type=parse_option, metavar="KEY=VALUE",
                   help="model option, e.g. --option activation=relu (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    p.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="write TensorBoard logs to DIR (pip install \"convolve[tensorboard]\"; view: tensorboard "
                        "--logdir DIR)")


def build_parser() -> Parser:
    """The full parser (used by `main` and by the docs)."""
    parser = Parser(prog="convolve", description="Train, evaluate and inspect CNNs built on NumPy.")
    parser.add_argument("--version", action="version", version=f"convolve {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback on errors (accepted anywhere on the command line)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    _add_train(sub)
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a dataset's test split",
                       description="Accuracy, top-5, per-class accuracy and confusion matrix of a checkpoint.")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--dataset", default=None, help="dataset name (default: the one it was trained on; required for "
                                                   "a checkpoint of your own model)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset files (default: the training one)")
    p.add_argument("--batch-size", type=positive_int, default=256)
    add_own_model_arguments(p)
    p = sub.add_parser("predict", help="classify image files with a checkpoint",
                       description="Print class and probability for each image (PNG, PGM/PPM or NPY).")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (.png, .pgm, .ppm, .npy)")
    p.add_argument("--top", type=positive_int, default=1, help="show the TOP most probable classes (default 1)")
    add_own_model_arguments(p, classes=True)
    p = sub.add_parser("summary", help="per-layer shapes, parameters and FLOPs of a model",
                       description="Print the layer-by-layer summary of a zoo model; given several models, a "
                                   "table of their parameters and MACs with each one's difference to the previous.")
    p.add_argument("model", nargs="+", type=model_spec, metavar="MODEL",
                   help="model name (see `convolve models`), optionally with options: NAME:KEY=VALUE,KEY=VALUE")
    p.add_argument("--input-size", type=positive_int, nargs=3, metavar=("C", "H", "W"), default=None,
                   help="input size (default: the model's native size)")
    p.add_argument("--num-classes", type=positive_int, default=None)
    p.add_argument("--option", action="append", type=parse_option, metavar="KEY=VALUE", help="model option")
    add_visualize_parser(sub)
    add_export_parser(sub, positive_int, parse_option)
    add_explain_parser(sub)
    add_report_parser(sub)
    sub.add_parser("models", help="list the model zoo", description="List the models `convolve train` knows.")
    sub.add_parser("datasets", help="list the datasets", description="List the datasets `convolve train` knows.")
    return parser
