"""The process group: which processes train together, over MPI (mpi4py) or, without a launcher, this process alone.

A job started by `mpiexec -n N python -m mpi4py ...` (MPICH, Open MPI, Slurm's PMI) is N ranks on MPI's
COMM_WORLD. A process started without a launcher is a group of one: every collective returns its input and
mpi4py is never imported, so convolve works (and a script written for N ranks runs) without MPI installed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["destroy_process_group", "get_backend", "get_rank", "get_world_size", "init_process_group",
           "is_available", "is_initialized", "is_mpi_launched"]

# Variables a process launcher sets in every rank's environment (MPICH/Hydra and Slurm PMI, Open MPI, PMIx).
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
BACKENDS = ("mpi", "local")


class _Group:
    """The initialized group: its backend name, this process's rank, the number of ranks, the MPI communicator."""

    def __init__(self, backend: str, rank: int, size: int, comm: Any) -> None:
        self.backend, self.rank, self.size, self.comm = backend, rank, size, comm


_group: _Group | None = None


def is_available() -> bool:
    """Whether MPI can be used: mpi4py is installed (`pip install convolve[distributed]`)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def is_mpi_launched() -> bool:
    """Whether this process was started by an MPI launcher (mpiexec/mpirun/srun), or already runs MPI."""
    return "mpi4py.MPI" in sys.modules or any(v in os.environ for v in LAUNCHER_VARIABLES)


def _mpi_world() -> Any:
    """MPI's COMM_WORLD, importing mpi4py (which initializes MPI) with a clear error when it is missing."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "init_process_group: backend 'mpi' needs mpi4py and an MPI library; install them with "
            "`pip install convolve[distributed]` (mpi4py + the MPICH wheels)"
        ) from exc
    return MPI.COMM_WORLD


def init_process_group(backend: str | None = None, *, world_size: int = -1, rank: int = -1) -> None:
    """Join the job's process group (as `torch.distributed.init_process_group`); MPI assigns ranks.

    `backend`: 'mpi', 'local' (this process alone), or None: 'mpi' when started by an MPI launcher, else 'local'.
    `world_size` and `rank`, when given, are checked against what the launcher assigned.
    """
    global _group
    if _group is not None:
        raise RuntimeError("init_process_group: the process group is already initialized; call "
                           "destroy_process_group() first to start another")
    if backend is None:
        backend = "mpi" if is_mpi_launched() else "local"
    if backend not in BACKENDS:
        raise ValueError(f"init_process_group: `backend` must be one of {BACKENDS} or None, got {backend!r}")
    if backend == "mpi":
        comm = _mpi_world()
        group = _Group("mpi", comm.Get_rank(), comm.Get_size(), comm)
    else:
        group = _Group("local", 0, 1, None)
    for name, given, actual in (("world_size", world_size, group.size), ("rank", rank, group.rank)):
        if given != -1 and given != actual:
            raise ValueError(f"init_process_group: `{name}` (={given}) differs from the launcher's ({actual}); "
                             f"leave it at -1 or start the job with `mpiexec -n <world_size>`")
    _group = group


def destroy_process_group() -> None:
    """Leave the process group (MPI itself stays initialized until the process exits, as mpi4py does)."""
    global _group
    _group = None


def is_initialized() -> bool:
    """Whether `init_process_group` has been called."""
    return _group is not None


def current_group(fn: str) -> _Group:
    """The initialized group, or a clear error naming the function `fn` that needs it."""
    if _group is None:
        raise RuntimeError(f"{fn}: the default process group is not initialized; call "
                           f"convolve.distributed.init_process_group() first")
    return _group


def get_rank() -> int:
    """This process's rank, 0 ... world_size - 1."""
    return current_group("get_rank").rank


def get_world_size() -> int:
    """The number of processes in the group."""
    return current_group("get_world_size").size


def get_backend() -> str:
    """'mpi' or 'local'."""
    return current_group("get_backend").backend
