"""What each `convolve` subcommand does; argument parsing lives in `parser.py`, error reporting in `main`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from convolve import data, models, nn
from convolve._atomic import ensure_writable_dir
from convolve.autograd import no_grad
from convolve.cli import parallel, resume
from convolve.data.images import read_image
from convolve.random import Generator, manual_seed
from convolve.tensor import Tensor
from convolve.train import BEST, LAST, EarlyStopping, Trainer, evaluate, model_files, recipe
from convolve.train.ranks import is_main_process, reduce_eval_result
from convolve.train.recipe import prepare_image


def _say(text: str) -> None:
    if is_main_process():  # under mpiexec, rank 0 speaks for all
        print(text, flush=True)


def _load_dataset(name: str, root: str | None, train: bool, download: bool = False) -> Any:
    if root is not None and not Path(root).is_dir():
        raise FileNotFoundError(f"--data-dir {root} does not exist or is not a folder")
    return data.get_dataset(name, root=root, train=train, download=download)


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or, with --resume, continue) a run, checkpoint every epoch into --out, evaluate on the test split.

    Under `mpiexec -n N python -m mpi4py -m convolve train ...` the same run is data-parallel over N ranks."""
    _, world = parallel.join()
    planned_epochs = None
    if args.resume:
        args, planned_epochs = resume.resumed_run_args(args)
    else:
        args = resume.new_run_args(args)
    models.model_spec(args.model)  # unknown model -> clear error before any data is read
    out = resume.run_folder(args)
    if args.patience is not None and not args.val_split:
        raise ValueError("--patience needs a validation split: add e.g. --val-split 0.1")
    if args.dataset == "digits" and args.data_dir is not None:
        raise ValueError("--data-dir does not apply to the bundled digits dataset (it ships with convolve); "
                         "leave it out")
    recipe.optimizer_settings(args)  # --alpha / --eps fit the optimizer: checked before any data is read
    ensure_writable_dir(out)  # before any data is read or any epoch is trained
    run = _build_run(args, out)
    trainer, train_loader = run["trainer"], run["train_loader"]
    what = f"training {args.model} on {args.dataset}"
    if args.resume:
        trainer.resume(train_loader)
        if planned_epochs != args.epochs:  # the schedule of a run planned with the new length, from here on
            trainer.scheduler = recipe.replay_scheduler(args, trainer.optimizer, len(train_loader), trainer.epoch)
        what = f"resuming {args.model} on {args.dataset} after epoch {trainer.epoch}"
    ranks = f", {world} processes of {args.batch_size // world} images per batch" if world > 1 else ""
    _say(f"{what} ({run['sizes']}, {args.epochs} epochs, {args.optimizer} lr {recipe.learning_rate(args):g}, "
         f"{args.schedule}{ranks}) -> {out}")
    start = time.perf_counter()
    try:
        trainer.fit(train_loader, args.epochs, val_loader=run["val_loader"])
    finally:
        for callback in trainer.callbacks:  # the TensorBoard writer: flush and close its event file
            if hasattr(callback, "close"):
                callback.close()
    stopper = trainer.early_stopping
    if stopper is not None and stopper.stopped_epoch is not None:
        _say(f"early stopping after epoch {stopper.stopped_epoch}: best validation accuracy {stopper.best:.4f} at "
             f"epoch {stopper.best_epoch} (its weights are in {out / BEST})")
    result = reduce_eval_result(evaluate(trainer.model, run["test_loader"], trainer.loss_fn))
    _say(f"trained in {time.perf_counter() - start:.1f} s; checkpoint {out / LAST}, history {out / 'history.csv'}")
    _say(f"test accuracy: {result.accuracy:.4f}")
    return 0


def _build_run(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Data, loaders, model, optimizer, schedule and Trainer of the recipe in `args` (seeded)."""
    train_set = _load_dataset(args.dataset, args.data_dir, True, args.download)
    test_set = _load_dataset(args.dataset, args.data_dir, False, args.download)
    meta = recipe.build_meta(args, train_set)
    val_set = None
    if args.val_split:
        train_set, val_set = recipe.split_train(train_set, args.val_split, args.seed)
    manual_seed(args.seed)
    model = parallel.wrap(recipe.build_model(meta))
    shuffle_gen, aug_gen = Generator(args.seed + 1), Generator(args.seed + 2)
    train_tf = recipe.train_transform(meta, args.augment, aug_gen)
    train_loader = parallel.train_loader(train_set, args.batch_size, train_tf, shuffle_gen, args.seed)
    test_loader = parallel.eval_loader(test_set, recipe.eval_transform(meta))
    val_loader = test_loader
    if val_set is not None:
        val_loader = parallel.eval_loader(val_set, recipe.eval_transform(meta))
    stopper = None if args.patience is None else EarlyStopping("val_accuracy", patience=args.patience)
    optimizer = recipe.build_optimizer(args, model)
    scheduler = recipe.build_scheduler(args, optimizer, len(train_loader))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    meta["recipe"] = {k: v for k, v in vars(args).items() if k not in ("func", "option", "debug")}
    meta["recipe"]["data_dir"] = str(Path(args.data_dir).resolve()) if args.data_dir else None
    callbacks: list[Any] = [_print_epoch]
    if args.tensorboard and is_main_process():  # under mpiexec, rank 0 alone logs
        from convolve.train import TensorBoard

        callbacks.append(TensorBoard(args.tensorboard, hparams=_tensorboard_hparams(args)))
    trainer = Trainer(model, loss_fn, optimizer, scheduler, checkpoint_dir=out, early_stopping=stopper,
                      progress=False if args.no_progress else None, callbacks=callbacks, meta=meta,
                      aux_weight=args.aux_weight, clip_grad_norm=args.clip_grad_norm)
    val_note = f" / {len(val_set)} validation" if val_set is not None else ""
    sizes = f"{len(train_set)} train{val_note} / {len(test_set)} test images"
    return {"trainer": trainer, "train_loader": train_loader, "val_loader": val_loader, "test_loader": test_loader,
            "sizes": sizes}


def _tensorboard_hparams(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe's flags worth comparing runs by, for TensorBoard's HParams tab."""
    keys = ("model", "dataset", "epochs", "batch_size", "schedule", "label_smoothing", "augment", "val_split")
    return {k: getattr(args, k) for k in keys}


def _print_epoch(trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
    recipe = trainer.meta.get("recipe", {})
    name = "val" if trainer.early_stopping is not None or recipe.get("val_split") else "test"
    val = f", {name} loss {record['val_loss']:.4f} acc {record['val_accuracy']:.4f}" if "val_loss" in record else ""
    smoothing = recipe.get("label_smoothing") or 0.0
    note = f" (losses with label smoothing {smoothing:g})" if smoothing else ""
    _say(f"epoch {epoch}: train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.4f}{val}, "
         f"lr {record['lr']:.3g}, {record['time']:.1f} s, {record['images_per_second']:.0f} img/s{note}")


def load_model(path: str, factory: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint file (or a run folder's last.npz); returns (model, meta)."""
    return model_files.load_model(path, factory)


def model_and_meta(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The checkpoint's model (a zoo model, or the one --model builds) and how to preprocess its inputs: the
    checkpoint's metadata, completed for a model of your own from --dataset, --mean/--std and --classes."""
    model, meta = load_model(args.checkpoint, getattr(args, "model", None))
    name = getattr(args, "dataset", None) or meta.get("dataset")
    extra: dict[str, Any] = {"dataset": name, "mean": args.mean, "std": args.std,
                             "classes": getattr(args, "classes", None)}
    if "image_shape" not in meta and name is not None:  # a model of your own: shapes and classes from the data
        test_set = _load_dataset(name, getattr(args, "data_dir", None), False)
        extra.update(image_shape=recipe.image_shape(test_set), pixel_max=test_set.pixel_max,
                     classes=extra["classes"] or list(test_set.classes))
    return model, model_files.complete_meta(meta, **extra)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint on a test split; prints metrics, per-class accuracy and the confusion matrix."""
    model, meta = model_and_meta(args)
    name = args.dataset or meta["dataset"]
    if name is None:
        raise ValueError("evaluate: pass --dataset: the checkpoint does not say which dataset the model was trained on")
    trained_dir = (meta.get("recipe") or {}).get("data_dir") if name == meta["dataset"] else None
    test_set = _load_dataset(name, args.data_dir or trained_dir, False)
    shape = recipe.image_shape(test_set)
    if list(shape) != list(meta["image_shape"]) or len(test_set.classes) != meta["num_classes"]:
        raise ValueError(f"the checkpoint was trained on {meta['num_classes']}-class images of shape "
                         f"{tuple(meta['image_shape'])}, but {name} has {len(test_set.classes)} classes of {shape}")
    loader = data.DataLoader(test_set, batch_size=args.batch_size, transform=recipe.eval_transform(meta))
    res = evaluate(model, loader, nn.CrossEntropyLoss())
    _say(f"{meta['model']} on {name} test ({res.num_samples} images): loss {res.loss:.4f} (cross-entropy without "
         f"label smoothing), top-5 {res.top5:.4f}")
    classes = meta.get("classes") or [str(i) for i in range(meta["num_classes"])]
    width = max(len(c) for c in classes)
    _say("per-class accuracy: " + ", ".join(f"{c} {a:.4f}" for c, a in zip(classes, res.per_class_accuracy)))
    _say("confusion matrix (rows: true class, columns: predicted):")
    for c, row in zip(classes, res.confusion_matrix):
        _say(f"  {c:>{width}} " + " ".join(f"{v:5d}" for v in row))
    _say(f"test accuracy: {res.accuracy:.4f}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Print the most probable class(es) and probability for each image."""
    model, meta = model_and_meta(args)
    classes = meta.get("classes")
    size = meta.get("input_size")  # unknown for a model of your own: bound the decode cost at 16M pixels
    native_pixels = size[1] * size[2] if size else 1 << 18
    max_pixels = max(64 * native_pixels, 1 << 16)  # decode cost bounded; a wrong size is reported by shape below
    for path in args.images:
        x = prepare_image(read_image(path, float(meta["pixel_max"]), max_pixels), meta, str(path))
        with no_grad():
            logits = np.asarray(model(Tensor(x)).data, dtype=np.float64)[0]
        if not np.isfinite(logits).all():
            raise ValueError(f"{path}: the model's output holds NaN or inf (are the checkpoint's weights finite?)")
        if classes is not None and len(classes) != len(logits):
            raise ValueError(f"{len(classes)} class names were given but the model outputs {len(logits)} scores")
        prob = np.exp(logits - logits.max())
        prob /= prob.sum()
        top = np.argsort(-prob, kind="stable")[: args.top]
        _say(f"{path}: " + ", ".join(f"{classes[k] if classes else k} ({prob[k]:.4f})" for k in top))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """Print `convolve.inspect.summary` of a zoo model, or `inspect.compare` of several."""
    from convolve import inspect

    built = []
    for name, options, label in args.model:
        models.model_spec(name)  # unknown model -> clear error before anything is built
        built.append((label, models.get_model(name, num_classes=args.num_classes,
                                              **{**dict(args.option or []), **options})))
    size = tuple(args.input_size) if args.input_size else None
    if len(built) > 1:
        _say(str(inspect.compare(built, size)))
    else:
        _say(str(inspect.summary(built[0][1], size)))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """One line per zoo model: name, native input size, default classes, description."""
    names = models.list_models()
    width = max(len(n) for n in names)
    for name in names:
        spec = models.model_spec(name)
        size = "x".join(map(str, spec.input_size))
        _say(f"{name:<{width}}  {size:<9} {spec.num_classes:>5} classes  {spec.description}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    """One line per dataset name."""
    for name in data.list_datasets():
        note = "bundled, no download" if name == "digits" else f"default model {recipe.DEFAULT_MODELS.get(name)}"
        _say(f"{name:<16} {note}")
    return 0


def cmd_visualize(args: argparse.Namespace) -> int:
    """`convolve visualize VIEW ...`, wired in `convolve.cli.visualize` (needs matplotlib)."""
    from convolve.cli.visualize import cmd_visualize as visualize

    return visualize(args)


def cmd_export(args: argparse.Namespace) -> int:
    """`convolve export RUN_OR_MODEL --out FILE` (ONNX or safetensors), implemented in `convolve.cli.export`."""
    from convolve.cli.export import cmd_export as export

    return export(args)


def cmd_explain(args: argparse.Namespace) -> int:
    """`convolve explain ...`, wired in `convolve.cli.learn`."""
    from convolve.cli.learn import cmd_explain as explain

    return explain(args)


def cmd_report(args: argparse.Namespace) -> int:
    """`convolve report RUN --out FILE`, wired in `convolve.cli.learn`."""
    from convolve.cli.learn import cmd_report as report

    return report(args)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "summary": cmd_summary,
            "visualize": cmd_visualize, "export": cmd_export, "models": cmd_models, "datasets": cmd_datasets,
            "explain": cmd_explain, "report": cmd_report}
