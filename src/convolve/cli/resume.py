"""The settings of `convolve train`: defaults for a new run, or, with `--resume`, the recipe stored in the run's
last.npz, so `convolve train --out RUN --resume` alone continues a run exactly as it was started.

On resume a flag is either applied exactly or refused by name: `--epochs` may grow (the learning-rate schedule is
rebuilt for the new length), `--data-dir`, `--download` and `--no-progress` only say where the data is and how to
show progress; every other flag must repeat the stored value or be left out.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from convolve.cli import recipe
from convolve.train import LAST, load_checkpoint

TRAIN_DEFAULTS: dict[str, Any] = {
    "dataset": "digits", "batch_size": 64, "optimizer": "adam", "momentum": 0.9, "weight_decay": 0.0,
    "schedule": "onecycle", "label_smoothing": 0.0, "augment": False, "seed": 0, "val_split": 0.0,
}
RECIPE_FLAGS = (*TRAIN_DEFAULTS, "model", "epochs", "lr", "patience", "option", "alpha", "eps", "clip_grad_norm",
                "aux_weight")  # what defines a run
APPLIED_ON_RESUME = ("epochs", "data_dir")  # besides --download / --no-progress, which only change how it runs


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def run_folder(args: argparse.Namespace) -> Path:
    """--out, else runs/<model>-<dataset> (from the flags given, or the defaults)."""
    if args.out:
        return Path(args.out)
    dataset = (args.dataset or TRAIN_DEFAULTS["dataset"]).lower().replace("_", "-")
    model = args.model or recipe.DEFAULT_MODELS.get(dataset, "lenet5")
    return Path("runs") / f"{model}-{dataset}"


def new_run_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill every flag left out with its default."""
    for key, value in TRAIN_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.dataset = args.dataset.lower().replace("_", "-")
    args.model = args.model or recipe.DEFAULT_MODELS.get(args.dataset, "lenet5")
    args.epochs = args.epochs or recipe.DEFAULT_EPOCHS.get(args.dataset, 10)
    return args


def stored_recipe(folder: Path) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(recipe flags, model options, epochs completed) of the run in `folder`."""
    path = folder / LAST
    if not path.is_file():
        where = "does not exist" if not folder.exists() else f"has no {LAST}"
        raise FileNotFoundError(f"cannot resume, no checkpoint at {path}: the folder {where} (a run stopped before "
                                f"its first epoch finished has none: start it again without --resume)")
    _, extra = load_checkpoint(path)
    meta = extra.get("meta") or {}
    if not isinstance(meta.get("recipe"), dict):
        raise ValueError(f"cannot resume {path} from the command line: it holds no training recipe (it was not "
                         f"written by `convolve train`); resume it from Python with Trainer.fit(resume=...)")
    return dict(meta["recipe"]), dict(meta.get("model_options") or {}), int(extra["epoch"])


def _given_value(args: argparse.Namespace, key: str) -> Any:
    value = getattr(args, key)
    if key == "option":
        return None if value is None else dict(value)
    if key == "dataset" and value is not None:
        return value.lower().replace("_", "-")
    return value


def _options_text(options: Any) -> str:
    return " ".join(f"{k}={v}" for k, v in (options or {}).items()) or "no options"


def resumed_run_args(args: argparse.Namespace) -> tuple[argparse.Namespace, int]:
    """The stored recipe with the flags given now applied; refuses the ones that would change the run.

    Returns (args, epochs the stored recipe planned)."""
    folder = run_folder(args)
    stored, options, done = stored_recipe(folder)
    refused = []
    for key in RECIPE_FLAGS:
        given = _given_value(args, key)
        old = options if key == "option" else stored.get(key)
        if key == "lr":  # a run started without --lr used the recipe's default
            old = recipe.learning_rate(argparse.Namespace(**stored))
        if given is None or given == old or key in APPLIED_ON_RESUME:
            continue
        shown, was = (_options_text(given), _options_text(old)) if key == "option" else (given, old)
        refused.append(f"{flag(key)} {shown} (the run has {was})")
    if refused:
        raise ValueError(f"--resume continues {folder} with its stored settings; these flags would change them and "
                         f"cannot be applied: {'; '.join(refused)}. Leave them out, or start a new run in another "
                         f"--out folder")
    if args.epochs is not None and args.epochs < done:
        raise ValueError(f"--epochs {args.epochs} is fewer than the {done} epochs {folder} has already trained")
    merged = {**stored, "out": str(folder), "resume": True, "option": list(options.items()),
              "epochs": args.epochs or stored["epochs"], "download": args.download, "no_progress": args.no_progress}
    if args.data_dir is not None:
        merged["data_dir"] = args.data_dir
    resumed = argparse.Namespace(**{**vars(args), **merged})
    return resumed, int(stored["epochs"])
