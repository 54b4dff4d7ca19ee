"""Collectives on Tensors and NumPy arrays, as `torch.distributed`: all_reduce, broadcast, all_gather, barrier.

Every rank must call the same collectives in the same order with arrays of the same shape and dtype (MPI's
rule). They work in place on the tensor's array (a Tensor's version counter is bumped, as for any in-place
write) and block until done. In a group of one they return at once, leaving the data as it is.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from convolve.distributed.process_group import current_group
from convolve.tensor import Tensor

__all__ = ["ReduceOp", "all_gather", "all_gather_object", "all_reduce", "barrier", "broadcast",
           "broadcast_object_list"]


class ReduceOp(enum.Enum):
    """How `all_reduce` combines the ranks' values, elementwise."""

    SUM = "SUM"
    PRODUCT = "PROD"
    MIN = "MIN"
    MAX = "MAX"
    AVG = "AVG"  # SUM, then divided by the world size (floating-point data only)


def _array_of(tensor: Any, fn: str) -> np.ndarray:
    """The array a collective writes into: a Tensor's data or an ndarray itself."""
    array = tensor.data if isinstance(tensor, Tensor) else tensor
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{fn}: `tensor` must be a convolve Tensor or a NumPy array, got {type(tensor).__name__}")
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{fn}: `tensor` must hold numbers (float or int), got dtype {array.dtype}")
    return array


def _bump(tensor: Any) -> None:
    if isinstance(tensor, Tensor):
        tensor._version[0] += 1


def _mpi_op(op: ReduceOp) -> Any:
    from mpi4py import MPI

    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD, ReduceOp.MIN: MPI.MIN,
            ReduceOp.MAX: MPI.MAX}[op]


def all_reduce(tensor: Tensor | np.ndarray, op: ReduceOp = ReduceOp.SUM) -> None:
    """Replace `tensor` on every rank by the elementwise `op` (sum by default) of its values on all ranks."""
    fn = "all_reduce"
    group = current_group(fn)
    array = _array_of(tensor, fn)
    if not isinstance(op, ReduceOp):
        raise TypeError(f"{fn}: `op` must be a ReduceOp (e.g. ReduceOp.SUM), got {op!r}")
    if op is ReduceOp.AVG and array.dtype.kind != "f":
        raise TypeError(f"{fn}: ReduceOp.AVG needs floating-point data, got dtype {array.dtype}")
    if group.size == 1:
        return
    from mpi4py import MPI

    buffer = array if array.flags.c_contiguous else np.ascontiguousarray(array)
    group.comm.Allreduce(MPI.IN_PLACE, buffer, op=_mpi_op(op))
    if op is ReduceOp.AVG:
        buffer /= group.size
    if buffer is not array:
        array[...] = buffer
    _bump(tensor)


def broadcast(tensor: Tensor | np.ndarray, src: int = 0) -> None:
    """Copy `tensor` of rank `src` into `tensor` on every other rank."""
    fn = "broadcast"
    group = current_group(fn)
    array = _array_of(tensor, fn)
    _check_rank(src, "src", group.size, fn)
    if group.size == 1:
        return
    buffer = array if array.flags.c_contiguous else np.ascontiguousarray(array)
    group.comm.Bcast(buffer, root=src)
    if buffer is not array:
        array[...] = buffer
    _bump(tensor)


def all_gather(tensor_list: list[Any], tensor: Tensor | np.ndarray) -> None:
    """Fill `tensor_list[r]` (world_size tensors or arrays shaped like `tensor`) with `tensor` of rank r."""
    fn = "all_gather"
    group = current_group(fn)
    array = _array_of(tensor, fn)
    if not isinstance(tensor_list, list) or len(tensor_list) != group.size:
        got = len(tensor_list) if isinstance(tensor_list, list) else type(tensor_list).__name__
        raise ValueError(f"{fn}: `tensor_list` must be a list of world_size (={group.size}) tensors, got {got}")
    outs = [_array_of(t, fn) for t in tensor_list]
    for r, out in enumerate(outs):
        if out.shape != array.shape or out.dtype != array.dtype:
            raise ValueError(f"{fn}: `tensor_list[{r}]` must have the shape and dtype of `tensor` "
                             f"({array.shape}, {array.dtype}), got ({out.shape}, {out.dtype})")
    if group.size == 1:
        gathered = array[None]
    else:
        gathered = np.empty((group.size, *array.shape), array.dtype)  # (world_size, *shape)
        group.comm.Allgather(np.ascontiguousarray(array), gathered)
    for r, out in enumerate(outs):
        out[...] = gathered[r]
        _bump(tensor_list[r])


def all_gather_object(object_list: list[Any], obj: Any) -> None:
    """Fill `object_list[r]` (a list of world_size entries) with the picklable `obj` of rank r."""
    fn = "all_gather_object"
    group = current_group(fn)
    if not isinstance(object_list, list) or len(object_list) != group.size:
        raise ValueError(f"{fn}: `object_list` must be a list of world_size (={group.size}) entries")
    object_list[:] = [obj] if group.size == 1 else group.comm.allgather(obj)


def broadcast_object_list(object_list: list[Any], src: int = 0) -> None:
    """Replace the entries of `object_list` on every rank by those of rank `src` (picklable objects)."""
    fn = "broadcast_object_list"
    group = current_group(fn)
    if not isinstance(object_list, list):
        raise TypeError(f"{fn}: `object_list` must be a list, got {type(object_list).__name__}")
    _check_rank(src, "src", group.size, fn)
    if group.size > 1:
        object_list[:] = group.comm.bcast(object_list, root=src)


def barrier() -> None:
    """Wait until every rank has reached this call."""
    group = current_group("barrier")
    if group.size > 1:
        group.comm.Barrier()


def _check_rank(value: Any, name: str, size: int, fn: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value < size:
        raise ValueError(f"{fn}: `{name}` must be a rank in 0..{size - 1}, got {value!r}")
