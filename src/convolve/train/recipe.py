"""Training recipes: how a run's settings become data loaders, a model, an optimizer and a schedule, and back.

Everything needed to rebuild the model and its input pipeline (model name and options, dataset, pixel scale,
padding, normalization statistics, class names) is kept in a `meta` dict stored in each checkpoint, so that
`prepare_image` rebuilds a trained model's input anywhere (the command line, `viz`).
The `args` below are any object with the command line's attribute names (an `argparse.Namespace`).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

from convolve import data, models, optim
from convolve.random import Generator

DEFAULT_MODELS = {"digits": "digits_cnn", "mnist": "lenet5", "fashion-mnist": "lenet5", "cifar10": "resnet20",
                  "cifar100": "resnet20"}
DEFAULT_EPOCHS = {"digits": 12, "mnist": 10, "fashion-mnist": 10, "cifar10": 30, "cifar100": 30}
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
DIGITS_LR = {"sgd": 0.1, "adam": 1e-2, "adamw": 1e-2, "rmsprop": 3e-3}  # 1,437 images: few steps, larger steps


def split_train(dataset: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """(train, validation) parts of `dataset`, the validation part a seeded random `fraction` of it."""
    n = len(dataset)
    n_val = round(n * fraction)
    if not 0 < n_val < n:
        raise ValueError(f"--val-split {fraction} leaves {n - n_val} training and {n_val} validation images "
                         f"out of {n}; use a fraction strictly between 0 and 1")
    order = np.random.default_rng(seed).permutation(n)

    def part(idx: np.ndarray) -> Any:
        idx = np.sort(idx)
        return data.ArrayDataset(dataset.data[idx], dataset.targets[idx], dataset.classes,
                                 pixel_max=dataset.pixel_max)

    return part(order[n_val:]), part(order[:n_val])


def image_shape(dataset: Any) -> tuple[int, int, int]:
    """(C, H, W) of the dataset's stored images ((N, H, W) grayscale or (N, H, W, C) colour)."""
    shape = dataset.data.shape
    return (1, shape[1], shape[2]) if len(shape) == 3 else (shape[3], shape[1], shape[2])


def channel_stats(dataset: Any) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training images on [0, 1] (what Normalize needs)."""
    x = dataset.data.astype(np.float32) / float(dataset.pixel_max)
    axes = (0, 1, 2)
    if x.ndim == 3:
        return [float(x.mean())], [float(x.std())]
    return [float(v) for v in x.mean(axis=axes)], [float(v) for v in x.std(axis=axes)]


def fit_padding(model_name: str, dataset_name: str, data_shape: tuple[int, int, int]) -> int:
    """Zero padding per side that turns the dataset's images into the model's native input size."""
    spec = models.model_spec(model_name)
    c, h, w = spec.input_size
    dc, dh, dw = data_shape
    if dc != c:
        raise ValueError(f"model {spec.name!r} expects {c}-channel inputs but dataset {dataset_name!r} has "
                         f"{dc}-channel images; pick a model for {dc}-channel {dh}x{dw} images (see `convolve models`)")
    pad = (h - dh) // 2
    if h != w or dh != dw or pad < 0 or dh + 2 * pad != h:
        raise ValueError(f"model {spec.name!r} expects {c}x{h}x{w} inputs but dataset {dataset_name!r} has "
                         f"{dc}x{dh}x{dw} images (not reachable by symmetric zero padding)")
    return pad


def build_meta(args: argparse.Namespace, train_set: Any) -> dict[str, Any]:
    """The checkpoint metadata: how to rebuild the model and preprocess an image for it."""
    shape = image_shape(train_set)
    mean, std = channel_stats(train_set)
    options = dict(args.option or [])
    return {
        "model": args.model, "model_options": options, "num_classes": len(train_set.classes),
        "dataset": args.dataset, "classes": list(train_set.classes), "image_shape": list(shape),
        "pixel_max": int(train_set.pixel_max), "pad": fit_padding(args.model, args.dataset, shape),
        "input_size": list(models.model_spec(args.model).input_size), "mean": mean, "std": std,
    }


def eval_transform(meta: dict[str, Any]) -> Any:
    """uint8 batch -> padded, normalized float (N, C, H, W)."""
    steps: list[Any] = [data.transforms.ToTensor(max_value=meta["pixel_max"])]
    if meta["pad"]:
        steps.append(data.transforms.Pad(meta["pad"]))
    steps.append(data.transforms.Normalize(meta["mean"], meta["std"]))
    return data.transforms.Compose(steps)


def train_transform(meta: dict[str, Any], augment: bool, generator: Generator) -> Any:
    """As `eval_transform`, plus (with `augment`) a random crop after 2-4 pixels of padding and, for colour
    images, random horizontal flips (digits must not be mirrored)."""
    if not augment:
        return eval_transform(meta)
    tf = data.transforms
    size = meta["input_size"][1]
    crop_pad = 4 if size >= 32 and meta["image_shape"][0] == 3 else (1 if size <= 8 else 2)
    steps: list[Any] = [tf.ToTensor(max_value=meta["pixel_max"])]
    if meta["pad"]:
        steps.append(tf.Pad(meta["pad"]))
    steps.append(tf.RandomCrop(size, padding=crop_pad, generator=generator))
    if meta["image_shape"][0] == 3:
        steps.append(tf.RandomHorizontalFlip(generator=generator))
    steps.append(tf.Normalize(meta["mean"], meta["std"]))
    return tf.Compose(steps)


def build_model(meta: dict[str, Any]) -> Any:
    """The zoo model described by `meta` (weights freshly initialized)."""
    return models.get_model(meta["model"], num_classes=meta["num_classes"], **meta["model_options"])


def learning_rate(args: argparse.Namespace) -> float:
    """--lr, or the optimizer's default in this recipe (larger on the tiny digits set)."""
    if args.lr is not None:
        return float(args.lr)
    return (DIGITS_LR if args.dataset == "digits" else DEFAULT_LR)[args.optimizer]


def optimizer_settings(args: argparse.Namespace) -> dict[str, float]:
    """--alpha (RMSprop) and --eps (Adam, AdamW, RMSprop) as optimizer keywords, when given; an error for an
    optimizer that has no such setting."""
    extra = {}
    for key, owners in (("alpha", ("rmsprop",)), ("eps", ("adam", "adamw", "rmsprop"))):
        value = getattr(args, key, None)
        if value is None:
            continue
        if args.optimizer not in owners:
            raise ValueError(f"--{key} is a setting of --optimizer {' / '.join(owners)}, not of {args.optimizer}")
        extra[key] = value
    return extra


def build_optimizer(args: argparse.Namespace, model: Any) -> Any:
    """SGD (with --momentum, Nesterov off), Adam, AdamW or RMSprop (with --momentum) on all parameters."""
    lr = learning_rate(args)
    params, wd, extra = model.parameters(), args.weight_decay, optimizer_settings(args)
    if args.optimizer == "sgd":
        return optim.SGD(params, lr=lr, momentum=args.momentum, weight_decay=wd)
    if args.optimizer == "adam":
        return optim.Adam(params, lr=lr, weight_decay=wd, **extra)
    if args.optimizer == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=wd, **extra)
    return optim.RMSprop(params, lr=lr, momentum=args.momentum, weight_decay=wd, **extra)


def build_scheduler(args: argparse.Namespace, optimizer: Any, steps_per_epoch: int) -> Any:
    """none | step (x0.1 at 1/2 and 3/4 of the run) | cosine (per epoch) | onecycle (per batch)."""
    sched = optim.lr_scheduler
    if args.schedule == "none":
        return None
    if args.schedule == "step":
        milestones = sorted({max(1, math.ceil(args.epochs * f)) for f in (0.5, 0.75)})
        return sched.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    if args.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=args.epochs)
    max_lr = optimizer.param_groups[0]["lr"]
    return sched.OneCycleLR(optimizer, max_lr=max_lr, total_steps=args.epochs * steps_per_epoch)


def prepare_image(image: np.ndarray, meta: dict[str, Any], where: str) -> np.ndarray:
    """(H, W, C) in [0, 1] -> normalized (1, C, H, W) float32 at the model's input size; checks the shape when
    the checkpoint records it (a model of your own may not)."""
    ih, iw, ic = image.shape
    if meta["image_shape"] is not None:
        c, h, w = meta["image_shape"]
        _, mh, mw = meta["input_size"]
        if ic != c or (ih, iw) not in ((h, w), (mh, mw)):
            sizes = f"{h}x{w}" + (f" or {mh}x{mw}" if (h, w) != (mh, mw) else "")
            raise ValueError(f"{where}: expected a {c}-channel {sizes} image for {meta['model']} "
                             f"({meta['dataset']}), got {ic} channel{'s' if ic != 1 else ''} of {ih}x{iw}")
    x = image.transpose(2, 0, 1)[None].astype(np.float32)  # (1, C, H, W)
    if meta["image_shape"] is not None and (ih, iw) != tuple(meta["input_size"][1:]):
        p = meta["pad"]
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    mean = np.asarray(meta["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(meta["std"], np.float32).reshape(1, -1, 1, 1)
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise ValueError(f"the checkpoint's normalization is unusable (mean {meta['mean']}, std {meta['std']}: "
                         f"every std must be a finite number > 0)")
    return (x - mean) / std


def replay_scheduler(args: argparse.Namespace, optimizer: Any, steps_per_epoch: int, epochs_done: int) -> Any:
    """The schedule of a run planned for `args.epochs` epochs, advanced to the end of epoch `epochs_done`: a resumed
    run whose --epochs grew continues with exactly the learning rates (and one-cycle momenta) a run planned with
    the new length from the start has from that epoch on."""
    for group in optimizer.param_groups:  # forget the old plan; the new one starts from the recipe's lr
        for key in ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"):
            group.pop(key, None)
        group["lr"] = learning_rate(args)
    scheduler = build_scheduler(args, optimizer, steps_per_epoch)
    if scheduler is not None:
        per_batch = getattr(scheduler, "step_interval", "epoch") == "batch"
        for _ in range(epochs_done * steps_per_epoch if per_batch else epochs_done):
            scheduler.step()
    return scheduler
