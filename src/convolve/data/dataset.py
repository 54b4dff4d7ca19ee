"""The dataset base class: uint8 images + int64 targets in memory, a per-item view and a whole-batch accessor."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve.data.transforms import ToTensor
from convolve.random import Generator, rng
from convolve.tensor import Tensor

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


class Dataset:
    """Base class of map-style datasets, as `torch.utils.data.Dataset`: define `__getitem__` (and `__len__` for
    the DataLoader). `a + b` concatenates two datasets."""

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: Any) -> ConcatDataset:
        return ConcatDataset([self, other])


class ConcatDataset(Dataset):
    """Several datasets one after the other, as `torch.utils.data.ConcatDataset`."""

    def __init__(self, datasets: Sequence[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: `datasets` should not be an empty iterable")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ConcatDataset: index {index} out of range for {n} items")
        index %= n
        which = int(np.searchsorted(self.cumulative_sizes, index, side="right"))
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


class ArrayDataset(Dataset):
    """Images and labels held as arrays, with the batch transform the DataLoader applies to whole batches.

    `data` is either raw images, uint8 (N, H, W) for grayscale or (N, H, W, 3) for colour (torchvision's
    layouts, scaled by `ToTensor(max_value=pixel_max)` unless another `transform` is given), or a float
    (N, C, H, W) array that is used as it is (no transform needed). `targets` is int64 (N,); `pixel_max` is the
    value that maps to 1.0 (255, or 16 for Digits). `transform` is a *batch* transform (see
    `convolve.data.transforms`). `ds[i]` is (image Tensor (C, H, W), int label), as a torchvision dataset with
    `ToTensor()` gives; the raw arrays stay in `ds.data` / `ds.targets`.
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
        _check_images(data, type(self).__name__)
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

    def batch_transform(self) -> Transform:
        """What turns a batch of `data` into float (N, C, H, W): `transform`, else ToTensor for raw images, else
        nothing (float data is already a batch of tensors)."""
        if self.transform is not None:
            return self.transform
        if self.data.dtype.kind == "f":
            return _identity
        return ToTensor(max_value=self.pixel_max)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        """(image Tensor (C, H, W), label): `batch_transform()` applied to a batch of one."""
        if not isinstance(index, int | np.integer) or isinstance(index, bool):
            raise TypeError(f"{type(self).__name__}: index must be an int, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {n} items")
        image = self.batch_transform()(self.data[index][None])[0]
        return Tensor._from_array(image), int(self.targets[index])

    def get_batch(self, indices: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """The raw (images, int64 labels) at `indices`, in one vectorized gather (no transform)."""
        return self.data[indices], self.targets[indices]

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self)}, image_shape={tuple(self.data.shape[1:])}, "
            f"classes={len(self.classes)}, transform={self.transform!r})"
        )


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _check_images(data: np.ndarray, fn: str) -> None:
    """uint8-like (N, H, W) / (N, H, W, C) raw images, or float (N, C, H, W) tensors."""
    if data.dtype.kind == "f":
        if data.ndim != 4:
            raise ValueError(
                f"{fn}: float `data` must be 4-D (N, C, H, W), got shape {data.shape} (for other shapes use "
                "TensorDataset)"
            )
        return
    if data.ndim not in (3, 4):
        raise ValueError(f"{fn}: `data` must be 3-D (N, H, W) or 4-D (N, H, W, C), got shape {data.shape}")


class TensorDataset(Dataset):
    """Tensors (or arrays) sharing their first dimension; item i is the tuple of their i-th rows, as
    `torch.utils.data.TensorDataset`. The DataLoader gathers whole batches of it in one index."""

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset: give at least one tensor")
        arrays = [t.data if isinstance(t, Tensor) else np.asarray(t) for t in tensors]
        for i, a in enumerate(arrays):
            if a.ndim == 0 or len(a) != len(arrays[0]):
                raise ValueError(
                    f"TensorDataset: size mismatch between tensors: tensor 0 has {len(arrays[0])} rows, "
                    f"tensor {i} has shape {a.shape}"
                )
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor._from_array(a) for t, a in zip(tensors, arrays))

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def get_batch(self, indices: np.ndarray) -> tuple[Tensor, ...]:
        """The rows at `indices` of every tensor, in one gather each (detached from any graph)."""
        return tuple(Tensor._from_array(t.data[indices]) for t in self.tensors)


class Subset(ArrayDataset):
    """The items of `dataset` at `indices` (as `torch.utils.data.Subset`). A convolve image dataset is copied into
    a dataset of its own (so the loader's whole-batch path applies); any other dataset is viewed by index."""

    def __new__(cls, dataset: Any, indices: Sequence[int] | np.ndarray) -> Any:
        if isinstance(dataset, ArrayDataset) or cls is not Subset:
            return super().__new__(cls)
        return IndexSubset(dataset, indices)

    def __init__(self, dataset: ArrayDataset, indices: Sequence[int] | np.ndarray) -> None:
        idx = _check_indices(dataset, indices)
        self.dataset, self.indices = dataset, idx
        super().__init__(dataset.data[idx], dataset.targets[idx], dataset.classes, dataset.transform, dataset.pixel_max)


def _check_indices(dataset: Any, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"Subset: `dataset` must have __len__ and __getitem__, got {type(dataset).__name__}")
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1 or (idx.size and (idx.min() < -len(dataset) or idx.max() >= len(dataset))):
        raise ValueError(f"Subset: `indices` must be 1-D and within 0..{len(dataset) - 1}, got shape {idx.shape}")
    return idx


class IndexSubset(Dataset):
    """`Subset` of a dataset that is not a convolve image dataset: item i is `dataset[indices[i]]`."""

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray) -> None:
        self.dataset, self.indices = dataset, _check_indices(dataset, indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def __getattr__(self, name: str) -> Any:
        if name == "get_batch" and callable(getattr(self.__dict__.get("dataset"), "get_batch", None)):
            return lambda indices: self.dataset.get_batch(self.indices[indices])
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


def random_split(dataset: Any, lengths: Sequence[int | float], generator: Generator | None = None) -> list[Any]:
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
