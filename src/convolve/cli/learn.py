"""Argument wiring of `convolve explain` and `convolve report` (the work is in `convolve.inspect.explain` and
`convolve.viz.report`)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

LAYER_OPTIONS = ("out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias", "padding_mode",
                 "ceil_mode")


def sizes(text: str) -> tuple[int, ...]:
    """'3x227x227' -> (3, 227, 227); '11' -> (11,)."""
    if not re.fullmatch(r"\d+(x\d+)*", text.strip()):
        raise argparse.ArgumentTypeError(f"must be positive integers joined by 'x' (e.g. 3x227x227), got {text!r}")
    return tuple(int(v) for v in text.strip().split("x"))


def _per_axis(text: str) -> Any:
    """'3' -> 3, '1x7' -> (1, 7)."""
    values = sizes(text)
    return values[0] if len(values) == 1 else values


def _padding(text: str) -> Any:
    return text if text in ("same", "valid") else _per_axis(text)


def add_explain_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="the worked arithmetic of a convolution or pooling layer",
        description="Print the lecture's arithmetic for one layer: output size with the numbers substituted, "
                    "parameters with and without weight sharing, the equivalent fully connected layer, MACs and "
                    "FLOPs, im2col shapes, receptive field, memory. Give the layer by its parameters "
                    "(`convolve explain conv2d --input 3x227x227 --out-channels 96 --kernel 11 --stride 4`) or as "
                    "a layer of a zoo model or checkpoint (`convolve explain alexnet features.0`).")
    p.add_argument("what", help="conv1d, conv2d, max_pool1d/2d, avg_pool1d/2d; or a model name (see `convolve "
                                "models`), a checkpoint .npz or a run folder")
    p.add_argument("layer", nargs="?", default="", help="the layer's name in the model (e.g. features.0)")
    p.add_argument("--input", type=sizes, default=None, metavar="CxHxW",
                   help="input size without the batch (required for a layer by parameters; default for a model: "
                        "its native size)")
    p.add_argument("--out-channels", type=int, default=None, help="number of filters K (convolutions)")
    p.add_argument("--kernel", dest="kernel_size", type=_per_axis, default=None, metavar="F", help="e.g. 11 or 1x7")
    p.add_argument("--stride", type=_per_axis, default=None, help="default 1 (conv) or the kernel (pooling)")
    p.add_argument("--padding", type=_padding, default=None, help="an int, HxW, same or valid (default 0)")
    p.add_argument("--dilation", type=_per_axis, default=None, help="default 1")
    p.add_argument("--groups", type=int, default=None, help="default 1 (convolutions)")
    p.add_argument("--no-bias", dest="bias", action="store_const", const=False, default=None,
                   help="a convolution without bias")
    p.add_argument("--padding-mode", choices=("zeros", "reflect", "replicate", "circular"), default=None)
    p.add_argument("--ceil-mode", action="store_const", const=True, default=None, help="pooling: round up")


def cmd_explain(args: argparse.Namespace) -> int:
    """Print `inspect.explain(...)` (layer by parameters) or `inspect.explain_layer(...)` (layer of a model)."""
    from convolve import inspect, models
    from convolve.inspect.explain import LAYERS

    given = {k: getattr(args, k) for k in LAYER_OPTIONS if getattr(args, k) is not None}
    if args.what.lower().replace("_", "") in LAYERS:
        if args.layer:
            raise ValueError(f"explain: a layer given by its parameters takes no layer name, got {args.layer!r}")
        if args.input is None:
            raise ValueError(f"explain {args.what}: --input is required (e.g. --input 3x227x227)")
        print(inspect.explain(args.what, args.input, **given))
        return 0
    if given:
        options = ", ".join("--" + k.replace("_size", "").replace("_", "-") for k in given)
        raise ValueError(f"explain: {options}: only for a layer given by its parameters, not for a model's layer")
    if Path(args.what).exists():
        from convolve.train.model_files import load_model

        model = load_model(args.what)[0]
    else:
        model = models.get_model(args.what)
    print(inspect.explain_layer(model, args.layer, args.input))
    return 0


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="one self-contained HTML page about a trained run",
        description="Write an HTML page (pictures embedded, nothing fetched) for a run of `convolve train`: "
                    "accuracy, recipe, layer table, training curves, confusion matrix, first-layer filters, feature "
                    "maps, saliency and Grad-CAM of a few test images, a receptive field (needs matplotlib).")
    p.add_argument("run", help="a run folder written by `convolve train`, or its checkpoint .npz")
    p.add_argument("--out", default="report.html", help="the HTML file to write (default ./report.html)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset files (default: the training one)")
    p.add_argument("--num-images", type=int, default=3, help="test images shown (default 3)")
    p.add_argument("--dpi", type=int, default=80, help="resolution of the embedded pictures (default 80)")


def cmd_report(args: argparse.Namespace) -> int:
    """`convolve.viz.report.write_run_report` of the run; prints the file written."""
    from convolve.viz._figure import require_matplotlib
    from convolve.viz.report import write_run_report

    require_matplotlib("report")  # before loading anything
    path = write_run_report(args.run, args.out, data_dir=args.data_dir, num_images=args.num_images, dpi=args.dpi)
    print(f"wrote {path}")
    return 0
