"""What training does differently on many ranks: rank 0 writes, metrics are summed, checkpoints are read once.

Without an initialized process group (or with one process) every function here is the single-process behaviour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convolve import distributed
from convolve.train.checkpoint import load_checkpoint
from convolve.train.metrics import EvalResult, per_class_accuracy


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return distributed.get_rank() if distributed.is_initialized() else 0


def world_size() -> int:
    """The number of ranks training together (1 without a process group)."""
    return distributed.get_world_size() if distributed.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process prints and writes files: rank 0, or the only process."""
    return not distributed.is_initialized() or distributed.get_rank() == 0


def unwrap(model: Any) -> Any:
    """The module inside a DistributedDataParallel wrapper (what checkpoints hold), else `model`."""
    return model.module if isinstance(model, distributed.DistributedDataParallel) else model


def sum_over_ranks(values: list[float]) -> list[float]:
    """Each of `values` summed over the ranks (float64)."""
    if world_size() == 1:
        return list(values)
    totals = np.array(values, dtype=np.float64)
    distributed.all_reduce(totals)
    return totals.tolist()


def reduce_eval_result(result: EvalResult) -> EvalResult:
    """The metrics of the union of the ranks' evaluation shards, from each rank's `evaluate` result."""
    if world_size() == 1:
        return result
    n = result.num_samples
    loss_sum, correct, correct5, count = sum_over_ranks([result.loss * n, result.accuracy * n, result.top5 * n, n])
    matrix = np.array(result.confusion_matrix, dtype=np.int64)
    distributed.all_reduce(matrix)
    return EvalResult(loss=loss_sum / count, accuracy=round(correct) / count, top5=round(correct5) / count,
                      per_class_accuracy=per_class_accuracy(matrix), confusion_matrix=matrix, num_samples=int(count))


def load_checkpoint_once(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """`load_checkpoint(path)` read by rank 0 and sent to every rank (other hosts need not hold the file)."""
    if world_size() == 1:
        return load_checkpoint(path)
    box: list[Any] = [load_checkpoint(path) if is_main_process() else None]
    distributed.broadcast_object_list(box, src=0)
    return box[0]
