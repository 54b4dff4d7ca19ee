"""Dataset names -> classes: `list_datasets()`, `get_dataset(name, ...)`."""

from __future__ import annotations

import os
from typing import Any

from convolve.data.cifar import CIFAR10, CIFAR100
from convolve.data.dataset import ArrayDataset, Transform
from convolve.data.digits import Digits
from convolve.data.mnist import MNIST, FashionMNIST

DATASETS: dict[str, type[Any]] = {
    "cifar10": CIFAR10,
    "cifar100": CIFAR100,
    "digits": Digits,
    "fashion-mnist": FashionMNIST,
    "mnist": MNIST,
}


def list_datasets() -> list[str]:
    """The names `get_dataset` accepts, sorted."""
    return sorted(DATASETS)


def get_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    train: bool = True,
    download: bool = False,
    transform: Transform | None = None,
) -> ArrayDataset:
    """Build the dataset called `name` (case-insensitive; '_' may stand for '-')."""
    if not isinstance(name, str):
        raise TypeError(f"get_dataset: `name` must be a string, got {type(name).__name__}")
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"get_dataset: unknown dataset {name!r}; valid names are {', '.join(list_datasets())}")
    return DATASETS[key](root=root, train=train, download=download, transform=transform)
