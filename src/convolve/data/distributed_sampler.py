"""DistributedSampler: each rank's disjoint shard of one global permutation per epoch (as PyTorch's)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from convolve.random import Generator, rng

__all__ = ["DistributedSampler"]


def _group_default(value: int | None, name: str) -> int:
    """`value`, or the process group's world size / rank when None (the group must be initialized then)."""
    if value is not None:
        return value
    from convolve import distributed  # lazily: data sits below distributed in the import order

    if not distributed.is_initialized():
        raise RuntimeError(f"DistributedSampler: `{name}` was not given and the process group is not initialized; "
                           f"call convolve.distributed.init_process_group() first or pass `{name}`")
    return distributed.get_world_size() if name == "num_replicas" else distributed.get_rank()


class DistributedSampler:
    """Indices of `dataset` for rank `rank` of `num_replicas`: rank r takes positions r, r + R, r + 2R, ... of
    the epoch's order (a permutation drawn from `seed + epoch` when `shuffle`, else 0..n-1), which every rank
    draws alike, so the shards are disjoint and together cover the dataset. To make shards equal,
    `drop_last=False` pads the order with its own first indices (a few samples are seen twice per epoch) and
    `drop_last=True` drops its tail. Call `set_epoch(epoch)` before each epoch for a fresh permutation
    (`Trainer.fit` does). Give the DataLoader `sampler=` and a per-rank `batch_size` = global batch / ranks.
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False) -> None:
        if not hasattr(dataset, "__len__"):
            raise TypeError(f"DistributedSampler: `dataset` must have a length, got {type(dataset).__name__}")
        num_replicas = _group_default(num_replicas, "num_replicas")
        rank = _group_default(rank, "rank")
        for name, value in (("num_replicas", num_replicas), ("rank", rank), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"DistributedSampler: `{name}` must be an int, got {value!r}")
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: `num_replicas` must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: `rank` (={rank}) must be in 0..num_replicas-1 "
                             f"(num_replicas={num_replicas})")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)  # = n // num_replicas
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of `epoch` (the same on every rank) in the next iteration."""
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise ValueError(f"DistributedSampler.set_epoch: `epoch` must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, int64 (num_samples,)."""
        n = len(self.dataset)
        order = rng(Generator(self.seed + self.epoch)).permutation(n) if self.shuffle else np.arange(n)
        if self.drop_last:
            order = order[: self.total_size]
        elif self.total_size > n:
            order = np.resize(order, self.total_size)  # pads by repeating the order from its start
        return order[self.rank : self.total_size : self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler(n={len(self.dataset)}, num_replicas={self.num_replicas}, rank={self.rank}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")
