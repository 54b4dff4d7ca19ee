"""Samplers (`torch.utils.data`'s names and semantics): which dataset indices a DataLoader visits, in what order,
and how they are grouped into batches. Randomness comes from a `convolve.Generator` (the global one when None)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any

import numpy as np

from convolve.random import Generator, rng


def _check_generator(generator: Any, fn: str) -> Generator | None:
    if generator is not None and not isinstance(generator, Generator):
        raise TypeError(f"{fn}: `generator` must be a convolve.Generator, got {type(generator).__name__}")
    return generator


def _check_count(value: Any, name: str, fn: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{fn}: `{name}` must be a positive integer, got {value!r}")
    return int(value)


class Sampler:
    """Base class: an iterable of dataset indices (subclasses define `__iter__`, usually `__len__`)."""

    def __init__(self, data_source: Sized | None = None) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Sized) -> None:
        super().__init__(data_source)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.data_source)  # type: ignore[arg-type]


class RandomSampler(Sampler):
    """A random permutation of the indices (a fresh one each pass), or `num_samples` draws with `replacement`.

    Without replacement and with `num_samples` larger than the dataset, whole permutations are chained
    (as PyTorch). The draw happens when iteration starts.
    """

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None) -> None:
        super().__init__(data_source)
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: `replacement` must be a bool, got {replacement!r}")
        self.replacement = replacement
        self._num_samples = None if num_samples is None else _check_count(num_samples, "num_samples", "RandomSampler")
        self.generator = _check_generator(generator, "RandomSampler")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        n, gen = len(self.data_source), rng(self.generator)  # type: ignore[arg-type]
        if self.replacement:
            return iter(gen.integers(0, n, size=self.num_samples).tolist())
        rounds = -(-self.num_samples // n) if n else 0
        order = np.concatenate([gen.permutation(n) for _ in range(rounds)]) if rounds else np.zeros(0, np.int64)
        return iter(order[: self.num_samples].tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given `indices`, in a random order drawn anew each pass."""

    def __init__(self, indices: Sequence[int], generator: Generator | None = None) -> None:
        super().__init__(None)
        self.indices = indices
        self.generator = _check_generator(generator, "SubsetRandomSampler")

    def __iter__(self) -> Iterator[Any]:
        order = rng(self.generator).permutation(len(self.indices))
        return iter([self.indices[i] for i in order])

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler):
    """Groups the indices of `sampler` into lists of `batch_size`; `drop_last` drops a short final batch."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        super().__init__(None)
        self.sampler = sampler
        self.batch_size = _check_count(batch_size, "batch_size", "BatchSampler")
        if not isinstance(drop_last, bool):
            raise TypeError(f"BatchSampler: `drop_last` must be a bool, got {drop_last!r}")
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class WeightedRandomSampler(Sampler):
    """`num_samples` indices drawn with probability proportional to `weights` (with replacement by default)."""

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator: Generator | None = None) -> None:
        super().__init__(None)
        w = np.asarray(weights.data if hasattr(weights, "data") else weights, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: `weights` must be a non-empty 1-D sequence of finite, "
                             f"non-negative numbers with a positive sum, got {weights!r}")
        self.weights = w
        self.num_samples = _check_count(num_samples, "num_samples", "WeightedRandomSampler")
        if not replacement and self.num_samples > int((w > 0).sum()):
            raise ValueError(f"WeightedRandomSampler: cannot draw {self.num_samples} samples without replacement "
                             f"from {int((w > 0).sum())} indices of non-zero weight")
        self.replacement = replacement
        self.generator = _check_generator(generator, "WeightedRandomSampler")

    def __iter__(self) -> Iterator[int]:
        p = self.weights / self.weights.sum()
        drawn = rng(self.generator).choice(len(p), size=self.num_samples, replace=self.replacement, p=p)
        return iter(drawn.tolist())

    def __len__(self) -> int:
        return self.num_samples
