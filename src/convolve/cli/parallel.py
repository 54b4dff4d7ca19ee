"""How `convolve train` runs under `mpiexec -n N python -m mpi4py -m convolve train ...`: no flag, N ranks.

`--batch-size` stays the global batch: each rank trains on batch_size / N images of a DistributedSampler shard,
the model is wrapped in DistributedDataParallel, and each rank evaluates a disjoint shard of the test or
validation images (the metrics are summed over the ranks by the Trainer). Started without mpiexec, all of this is
the single-process run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve import data, distributed
from convolve.random import Generator
from convolve.train.ranks import rank, world_size


def join() -> tuple[int, int]:
    """(rank, world size), after joining the process group when started by mpiexec (else (0, 1), no group)."""
    if not distributed.is_initialized() and distributed.is_mpi_launched():
        distributed.init_process_group()
    return rank(), world_size()


def train_loader(dataset: Any, batch_size: int, transform: Any, generator: Generator, seed: int) -> data.DataLoader:
    """The training batches of this rank: the shuffled global batches (one process), or this rank's slice of them."""
    world = world_size()
    if world == 1:
        return data.DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator, transform=transform)
    if batch_size % world:
        raise ValueError(f"--batch-size (={batch_size}) is the global batch and must be divisible by the number of "
                         f"processes (={world})")
    sampler = data.DistributedSampler(dataset, shuffle=True, seed=seed)
    return data.DataLoader(dataset, batch_size=batch_size // world, sampler=sampler, transform=transform)


def eval_loader(dataset: Any, transform: Any, batch_size: int = 256) -> data.DataLoader:
    """The evaluation batches of this rank: all images (one process) or every N-th from its rank, none twice."""
    if world_size() > 1:
        dataset = data.Subset(dataset, np.arange(rank(), len(dataset), world_size()))
    return data.DataLoader(dataset, batch_size=batch_size, transform=transform)


def wrap(model: Any) -> Any:
    """`model` in DistributedDataParallel when there are several ranks (rank 0's initial weights everywhere)."""
    return distributed.DistributedDataParallel(model) if world_size() > 1 else model
