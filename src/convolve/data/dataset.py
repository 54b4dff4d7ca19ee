"""The dataset base class: uint8 images + int64 targets in memory, a per-item view and a whole-batch accessor."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve.random import Generator, rng

Transform = Callable[[np.ndarray], np.ndarray]


def default_root(folder: str) -> Path:
    """`$CONVOLVE_DATA/<folder>` when that variable is set, else `~/.cache/convolve/<folder>`."""
    base = os.environ.get("CONVOLVE_DATA")
    if base:
        return Path(base).expanduser() / folder
    return Path.home() / ".cache" / "convolve" / folder


def resolve_root(root: str | os.PathLike[str] | None, folder: str) -> Path:
    """`root` as a Path, or the default root of the dataset folder `folder`."""
    return default_root(folder) if root is None else Path(root).expanduser()


def missing_file_error(fn: str, path: Path, root: Path) -> FileNotFoundError:
    """The error raised when a dataset's original file is absent: names the path and both ways out."""
    return FileNotFoundError(
        f"{fn}: {path} not found (root={root}). Pass download=True to fetch the original files into that folder, "
        f"or point `root` (--data-dir on the command line, or $CONVOLVE_DATA) to the folder that holds them."
    )


class ArrayDataset:
    """Images and labels held as arrays (as `torch.utils.data.TensorDataset`, plus what the loader needs).

    `data` is uint8, (N, H, W) for grayscale or (N, H, W, 3) for colour (torchvision's layouts);
    `targets` is int64 (N,); `pixel_max` is the value that maps to 1.0 (255, or 16 for Digits).
    `transform` is a *batch* transform (see `convolve.data.transforms`): `__getitem__` applies it to a
    batch of one, the DataLoader applies it to whole batches.
    """

    name = "dataset"

    def __init__(
        self,
        data: np.ndarray,
        targets: np.ndarray | Sequence[int],
        classes: Sequence[str] | None = None,
        transform: Transform | None = None,
        pixel_max: int = 255,
    ) -> None:
        data = np.asarray(data)
        targets = np.asarray(targets)
        if data.ndim not in (3, 4):
            raise ValueError(
                f"{type(self).__name__}: `data` must be 3-D (N, H, W) or 4-D (N, H, W, C), got shape {data.shape}"
            )
        if targets.ndim != 1 or len(targets) != len(data):
            raise ValueError(
                f"{type(self).__name__}: `targets` must be 1-D with one label per image ({len(data)}), "
                f"got shape {targets.shape}"
            )
        if targets.dtype.kind not in "iu":
            raise TypeError(f"{type(self).__name__}: `targets` must hold integers, got dtype {targets.dtype}")
        if transform is not None and not callable(transform):
            raise TypeError(f"{type(self).__name__}: `transform` must be callable, got {type(transform).__name__}")
        self.data = data
        self.targets = targets.astype(np.int64, copy=False)
        n_classes = int(self.targets.max()) + 1 if self.targets.size else 0
        self.classes = list(classes) if classes is not None else [str(c) for c in range(n_classes)]
        self.transform = transform
        self.pixel_max = pixel_max

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        """(image, label): the raw uint8 image, or `transform(image[None])[0]` when a transform is set."""
        if not isinstance(index, int | np.integer) or isinstance(index, bool):
            raise TypeError(f"{type(self).__name__}: index must be an int, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {n} items")
        image = self.data[index]
        if self.transform is not None:
            image = self.transform(image[None])[0]
        return image, int(self.targets[index])

    def get_batch(self, indices: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """The raw (uint8 images, int64 labels) at `indices`, in one vectorized gather (no transform)."""
        return self.data[indices], self.targets[indices]

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self)}, image_shape={tuple(self.data.shape[1:])}, "
            f"classes={len(self.classes)}, transform={self.transform!r})"
        )


class Subset(ArrayDataset):
    """The items of `dataset` at `indices` (as `torch.utils.data.Subset`), copied into a dataset of their own."""

    def __init__(self, dataset: ArrayDataset, indices: Sequence[int] | np.ndarray) -> None:
        if not isinstance(dataset, ArrayDataset):
            raise TypeError(f"Subset: `dataset` must be a convolve.data dataset, got {type(dataset).__name__}")
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or (idx.size and (idx.min() < -len(dataset) or idx.max() >= len(dataset))):
            raise ValueError(f"Subset: `indices` must be 1-D and within 0..{len(dataset) - 1}, got shape {idx.shape}")
        self.dataset, self.indices = dataset, idx
        super().__init__(dataset.data[idx], dataset.targets[idx], dataset.classes, dataset.transform, dataset.pixel_max)


def random_split(
    dataset: ArrayDataset, lengths: Sequence[int | float], generator: Generator | None = None
) -> list[Subset]:
    """Split `dataset` into disjoint random Subsets of the given `lengths` (counts, or fractions summing to 1)."""
    n = len(dataset)
    if lengths and all(isinstance(v, float) for v in lengths) and abs(sum(lengths) - 1) < 1e-9:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):  # hand out the remainder round-robin, as PyTorch does
            counts[i % len(counts)] += 1
    else:
        counts = [int(v) for v in lengths]
    if any(c < 0 for c in counts) or sum(counts) != n:
        raise ValueError(
            f"random_split: `lengths` must be non-negative counts summing to the dataset size ({n}) "
            f"or fractions summing to 1, got {list(lengths)}"
        )
    order = rng(generator).permutation(n)
    bounds = np.cumsum([0, *counts])
    return [Subset(dataset, order[a:b]) for a, b in itertools.pairwise(bounds)]
