"""Data-parallel training on many processes and machines over MPI (mpi4py), with `torch.distributed`'s names.

    mpiexec -n 4 python -m mpi4py train.py      # 4 ranks; `python train.py` alone is a group of one

    dist.init_process_group()                   # MPI when started by mpiexec, else this process alone
    model = DistributedDataParallel(model)      # rank 0's weights everywhere; gradients summed over ranks
    sampler = DistributedSampler(dataset)       # (convolve.data) this rank's shard of each epoch's permutation

mpi4py is imported only when the process was started by an MPI launcher: `import convolve` never needs it.
"""

from convolve.distributed.collectives import (
    ReduceOp,
    all_gather,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
)
from convolve.distributed.ddp import DistributedDataParallel
from convolve.distributed.process_group import (
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
    is_mpi_launched,
)

__all__ = [
    "DistributedDataParallel",
    "ReduceOp",
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "destroy_process_group",
    "get_backend",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_available",
    "is_initialized",
    "is_mpi_launched",
]
