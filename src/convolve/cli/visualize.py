"""`convolve visualize ...`: pictures of a trained checkpoint, written as PNG (or SVG) files into `--out DIR`.

Wiring: `add_visualize_parser(sub)` in `build_parser()` and `"visualize": cmd_visualize` in `COMMANDS`.
Checkpoints are loaded and images read and normalized exactly as `convolve predict` does (`train.recipe`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_LAYER = "default: the last conv layer whose maps are larger than 1x1"
CHECKPOINT_HELP = ("a .npz checkpoint written by `convolve train` (or its run folder), or weights saved with "
                   "convolve.save(model.state_dict(), path) together with --model module:function")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_own_model_arguments(p: argparse.ArgumentParser, classes: bool = False) -> None:
    """--model/--mean/--std (and --classes): how to rebuild and feed a model of your own."""
    p.add_argument("--model", default=None, metavar="MODULE:FUNCTION",
                   help="a callable that builds your model (e.g. mynets:build_model, or path/to/file.py:build); "
                        "the checkpoint's weights are loaded into it")
    p.add_argument("--mean", type=_floats, default=None, metavar="M[,M,M]",
                   help="per-channel mean to subtract after scaling pixels to [0, 1] (your model's normalization; "
                        "default: the checkpoint's, else none)")
    p.add_argument("--std", type=_floats, default=None, metavar="S[,S,S]",
                   help="per-channel standard deviation to divide by (default: the checkpoint's, else none)")
    if classes:
        p.add_argument("--classes", type=lambda t: [c.strip() for c in t.split(",")], default=None,
                       metavar="A,B,...", help="class names in output order (default: the checkpoint's, else "
                                               "indices)")


def _int_at_least(low: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text}")
        return value

    return parse


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="viz", help="output folder for the pictures (default ./viz)")
    p.add_argument("--format", choices=("png", "svg"), default="png", help="file format (default png)")
    p.add_argument("--dpi", type=_int_at_least(20), default=100, help="resolution of PNGs (default 100)")


def _checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    add_own_model_arguments(p, classes=True)
    p.add_argument("--dataset", default=None,
                   help="dataset for --test-index / confusion (default: the one the checkpoint was trained on)")


def _image(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--image", help="image file (.png, .pgm, .ppm, .npy) as `convolve predict` reads it")
    group.add_argument("--test-index", type=_int_at_least(0), metavar="N",
                       help="use image N of the test split of the dataset the checkpoint was trained on")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the dataset files (with --test-index; default: the one used for training)")


def add_visualize_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `visualize` and its views: filters, features, receptive-field, saliency, gradcam, confusion, curves,
    filters-demo, animate."""
    vis = subparsers.add_parser("visualize", help="draw filters, feature maps, saliency, curves ... as PNG files",
                                description="Pictures of what a trained checkpoint learned and looks at (needs "
                                            "matplotlib: pip install 'convolve[viz]').")
    views = vis.add_subparsers(dest="view", metavar="VIEW", required=True)
    p = views.add_parser("filters", help="learned kernels of a conv layer as an image grid")
    _checkpoint(p)
    p.add_argument("--layer", default=None, help="conv layer name (default: the first conv layer)")
    _common(p)
    p = views.add_parser("features", help="feature maps of conv layers for one image")
    _checkpoint(p)
    _image(p)
    p.add_argument("--layers", default=None,
                   help="comma-separated layer names (default: every conv layer with maps larger than 1x1)")
    p.add_argument("--max-channels", type=_int_at_least(1), default=16, help="maps shown per layer (default 16)")
    _common(p)
    p = views.add_parser("receptive-field", help="the input region one unit sees: theory vs input gradient")
    _checkpoint(p)
    _image(p)
    p.add_argument("--layer", default=None, help=f"leaf layer name ({DEFAULT_LAYER})")
    p.add_argument("--unit", type=_int_at_least(0), nargs=3, metavar=("C", "Y", "X"), default=None,
                   help="channel and position in the layer's output (default: channel 0, the centre)")
    _common(p)
    for name, what in (("saliency", "|d score / d input| for a class"), ("gradcam", "Grad-CAM of a class")):
        p = views.add_parser(name, help=what)
        _checkpoint(p)
        _image(p)
        if name == "gradcam":
            p.add_argument("--layer", default=None, help=f"layer name ({DEFAULT_LAYER}, or the activation right "
                                                         "after it)")
        p.add_argument("--target", type=_int_at_least(0), default=None, help="class index (default: predicted)")
        _common(p)
    p = views.add_parser("confusion", help="confusion matrix on the test split of the training dataset")
    _checkpoint(p)
    p.add_argument("--data-dir", default=None, help="folder holding the dataset files (default: the training one)")
    p.add_argument("--normalize", action="store_true", help="show row fractions (recall) instead of counts")
    _common(p)
    p = views.add_parser("curves", help="loss, accuracy and learning rate per epoch")
    p.add_argument("history", help="a run folder, or its history.csv / history.json")
    _common(p)
    p = views.add_parser("filters-demo", help="classic image filters as convolutions, four padding modes")
    p.add_argument("--image", default=None, help="image file (default: a synthetic test picture)")
    _common(p)
    _add_animate(views)
    return vis


def _sizes(text: str) -> Any:
    """'3' -> 3, '1x5x5' -> (1, 5, 5)."""
    parts = text.strip().split("x")
    if not all(v.isdigit() for v in parts):
        raise argparse.ArgumentTypeError(f"must be positive integers joined by 'x' (e.g. 1x5x5), got {text!r}")
    return int(parts[0]) if len(parts) == 1 else tuple(int(v) for v in parts)


def _add_animate(views: Any) -> None:
    p = views.add_parser("animate", help="an animated GIF of a convolution, pooling or their backward pass",
                         description="Write <out>/animate-<mode>.gif: the padded input, the window moving, the "
                                     "products and the sum for each output cell, the output filling in (Pillow).")
    p.add_argument("--mode", choices=("conv", "max-pool", "avg-pool", "backward-input", "backward-weight"),
                   default="conv", help="what to animate (default conv)")
    p.add_argument("--input", type=_sizes, default=(1, 5, 5), metavar="CxHxW", help="input size (default 1x5x5)")
    p.add_argument("--out-channels", type=_int_at_least(1), default=1, help="filters (default 1)")
    p.add_argument("--kernel", type=_sizes, default=3, metavar="F", help="kernel size, e.g. 3 or 2x3 (default 3)")
    p.add_argument("--stride", type=_int_at_least(1), default=1)
    p.add_argument("--padding", default="0", help="an int, 'same' or 'valid' (default 0)")
    p.add_argument("--padding-mode", choices=("zeros", "reflect", "replicate", "circular"), default="zeros")
    p.add_argument("--dilation", type=_int_at_least(1), default=1)
    p.add_argument("--groups", type=_int_at_least(1), default=1)
    p.add_argument("--bias", action="store_true", help="add a bias to each filter")
    p.add_argument("--seed", type=int, default=0, help="seed of the small-integer example values (default 0)")
    p.add_argument("--fps", type=float, default=2.0, help="frames per second (default 2)")
    p.add_argument("--out", default="viz", help="output folder (default ./viz)")


def _say(text: str) -> None:
    print(text, flush=True)


def _load(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from convolve.cli.commands import model_and_meta

    return model_and_meta(args)


def _input(args: argparse.Namespace, meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, str]:
    """(normalized (1, C, H, W) input, the picture to show (C, H, W) in [0, 1], a label) from --image/--test-index."""
    from convolve.data.images import read_image
    from convolve.train.recipe import prepare_image

    if args.image is not None:
        where = str(args.image)
        picture = read_image(args.image, float(meta["pixel_max"]))  # (H, W, C) in [0, 1]
    else:

        test_set = _test_set(args, meta)
        if args.test_index >= len(test_set):
            raise ValueError(f"visualize: --test-index must be in [0, {len(test_set)}) for the {meta['dataset']} "
                             f"test split, got {args.test_index}")
        raw = np.asarray(test_set.data[args.test_index], dtype=np.float64) / float(test_set.pixel_max)
        picture = raw[:, :, None] if raw.ndim == 2 else raw
        where = f"{meta['dataset']} test image {args.test_index}"
    x = prepare_image(picture, meta, where)  # (1, C, H, W), padded to the model's size
    mean = np.asarray(meta["mean"], np.float64).reshape(-1, 1, 1)
    std = np.asarray(meta["std"], np.float64).reshape(-1, 1, 1)
    shown = np.clip(x[0] * std + mean, 0.0, 1.0)  # what the model sees, back on [0, 1]
    return x, shown, where


def _test_set(args: argparse.Namespace, meta: dict[str, Any]) -> Any:
    """The test split of --dataset, else of the dataset the checkpoint was trained on (from its own folder)."""
    from convolve import data

    if meta.get("dataset") is None:
        raise ValueError("visualize: the checkpoint does not say which dataset it was trained on: pass --dataset "
                         "(or use --image)")
    root = args.data_dir or (meta.get("recipe") or {}).get("data_dir")  # default: where it was trained
    return data.get_dataset(meta["dataset"], root=root, train=False)


def _path(args: argparse.Namespace, stem: str) -> Path:
    return Path(args.out) / f"{stem.replace('.', '_')}.{args.format}"


def _filters(args: argparse.Namespace) -> Path:
    from convolve import viz

    model, _ = _load(args)
    names = viz.conv_layer_names(model)
    layer = args.layer or (names[0] if names else "")
    if not names:
        raise ValueError(f"visualize filters: {type(model).__name__} has no conv layer")
    path = _path(args, f"filters-{layer}")
    viz.plot_filters(model, layer, path, dpi=args.dpi)
    return path


def _features(args: argparse.Namespace) -> Path:
    from convolve import viz

    model, meta = _load(args)
    layers = None if args.layers is None else [s.strip() for s in args.layers.split(",") if s.strip()]
    x, shown, _ = _input(args, meta)
    path = _path(args, "features")
    viz.plot_feature_maps(model, x, layers, path, max_channels=args.max_channels, image=shown, dpi=args.dpi)
    return path


def _receptive_field(args: argparse.Namespace) -> Path:
    from convolve import viz
    from convolve.viz._layers import last_spatial_conv

    model, meta = _load(args)
    x, shown, _ = _input(args, meta)
    layer = args.layer or last_spatial_conv("visualize receptive-field", model, x)
    if args.unit is None:
        maps = viz.feature_maps(model, x, [layer])[layer]
        if maps.ndim != 3:
            raise ValueError(f"visualize receptive-field: layer {layer!r} outputs shape {maps.shape}, not maps; "
                             f"pick one of the layers with (C, H, W) outputs, e.g. {viz.conv_layer_names(model)}")
        c, y, xx = 0, maps.shape[1] // 2, maps.shape[2] // 2
    else:
        c, y, xx = args.unit
    path = _path(args, f"receptive-field-{layer}-{c}-{y}-{xx}")
    viz.plot_receptive_field(model, x, layer, c, y, xx, path, image=shown, dpi=args.dpi)
    return path


def _attribution(args: argparse.Namespace) -> Path:
    from convolve import viz
    from convolve.viz._layers import last_spatial_conv

    model, meta = _load(args)
    x, shown, _ = _input(args, meta)
    classes = meta.get("classes")
    if args.view == "saliency":
        path = _path(args, "saliency")
        viz.plot_saliency(model, x, args.target, path, image=shown, classes=classes, dpi=args.dpi)
    else:
        layer = args.layer or last_spatial_conv("visualize gradcam", model, x, activation=True)
        path = _path(args, f"gradcam-{layer}")
        viz.plot_grad_cam(model, x, layer, args.target, path, image=shown, classes=classes, dpi=args.dpi)
    return path


def _confusion(args: argparse.Namespace) -> Path:
    from convolve import data, nn, viz
    from convolve.train import evaluate, recipe

    model, meta = _load(args)
    test_set = _test_set(args, meta)
    loader = data.DataLoader(test_set, batch_size=256, transform=recipe.eval_transform(meta))
    result = evaluate(model, loader, nn.CrossEntropyLoss())
    path = _path(args, "confusion")
    viz.plot_confusion_matrix(result.confusion_matrix, meta.get("classes"), path, normalize=args.normalize,
                              dpi=args.dpi)
    _say(f"test accuracy {result.accuracy:.4f} on {result.num_samples} images")
    return path


def _curves(args: argparse.Namespace) -> Path:
    from convolve import viz

    path = _path(args, "curves")
    split, note = _curve_labels(Path(args.history))
    viz.plot_training_curves(args.history, path, eval_split=split, loss_note=note, dpi=args.dpi)
    return path


def _curve_labels(history: Path) -> tuple[str, str | None]:
    """What a `convolve train` run's val_* columns measured (the test split unless --val-split was given) and
    whether its losses include label smoothing, from the run folder's last checkpoint."""
    from convolve.train import LAST, load_checkpoint

    checkpoint = (history if history.is_dir() else history.parent) / LAST
    if not checkpoint.is_file():
        return "validation", None
    recipe = (load_checkpoint(checkpoint)[1].get("meta") or {}).get("recipe") or {}
    smoothing = recipe.get("label_smoothing") or 0.0
    return ("validation" if recipe.get("val_split") else "test",
            f"with label smoothing {smoothing:g}" if smoothing else None)


def _filters_demo(args: argparse.Namespace) -> Path:
    from convolve import viz

    image = None
    if args.image is not None:
        from convolve.data.images import read_image

        image = read_image(args.image).transpose(2, 0, 1)  # (C, H, W) in [0, 1]
    path = _path(args, "filters-demo")
    viz.plot_filters_demo(image, path, dpi=args.dpi)
    return path


def _animate(args: argparse.Namespace) -> Path:
    from convolve import viz

    if not isinstance(args.input, tuple) or len(args.input) != 3:
        raise ValueError(f"visualize animate: --input must be CxHxW, got {args.input!r}")
    padding = args.padding if args.padding in ("same", "valid") else _sizes(args.padding)
    path = Path(args.out) / f"animate-{args.mode}.gif"
    viz.animate(path, args.mode, args.input, out_channels=args.out_channels, kernel_size=args.kernel,
                stride=args.stride, padding=padding, dilation=args.dilation, groups=args.groups,
                padding_mode=args.padding_mode, bias=args.bias, seed=args.seed, fps=args.fps)
    return path


HANDLERS = {"animate": _animate, "filters": _filters, "features": _features, "receptive-field": _receptive_field,
            "saliency": _attribution, "gradcam": _attribution, "confusion": _confusion, "curves": _curves,
            "filters-demo": _filters_demo}


def cmd_visualize(args: argparse.Namespace) -> int:
    """Draw the requested view into --out and print the file written."""
    from convolve.viz._figure import require_matplotlib

    if args.view != "animate":  # animations need only Pillow
        require_matplotlib(f"visualize {args.view}")  # before loading anything
    path = HANDLERS[args.view](args)
    _say(f"wrote {path}")
    return 0
