"""The compiled kernels of the "fast" engine: Numba loops for the ops NumPy does in several passes over memory.

`kernels.py` holds the kernel classes (subclasses of the reference Functions, chosen by the policy like every
other kernel), `loops.py` the `@njit(nogil=True, cache=True)` loops they run on convolve's chunk threads.
Numba is imported on the first call that runs a loop, never by `import convolve` (its import costs ~0.5 s and
~150 MB): a kernel takes only float32/float64 arrays of more than MIN_ELEMENTS values, so small models load it
only for large batches (the README's digits job: for the ReLU and pooling of its evaluation batches of 256).
The "numpy" engine is the "fast" engine without these loops.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from convolve.engines.policy import policy
from convolve.engines.workspace import run_chunks

__all__ = ["MIN_ELEMENTS", "RANGE_BYTES", "available", "col2im_loop", "compiled_loops", "pays_for", "pays_for_values",
           "run_ranges"]

# Arrays of at most this many values (512 KB of float32) stay on NumPy: a compiled loop saves passes over
# memory, which is little on a small array, and a small model then never pays Numba's import. LeNet-5 C3's input
# gradient (128x6x14x14) is over it: its compiled col2im saves ~3 ms of a ~35 ms step (benchmarks/RESULTS.md).
MIN_ELEMENTS = 1 << 17

RANGE_BYTES = 1 << 19  # bytes of input per range: the unit of work handed to a thread

_installed: bool | None = None


def available() -> bool:
    """Whether Numba can be imported (checked without importing it)."""
    global _installed
    if _installed is None:
        _installed = importlib.util.find_spec("numba") is not None
    return _installed


def _takes(a: np.ndarray) -> bool:
    """Whether a compiled loop should take array `a`: over MIN_ELEMENTS float32/float64 values, Numba installed,
    and the active engine one with compiled kernels ("fast", not "numpy" or "reference")."""
    return pays_for_values(a.size, a.dtype)


def pays_for_values(size: int, dtype: Any) -> bool:
    """Whether a compiled loop should handle `size` values of `dtype` (see `_takes`)."""
    return size > MIN_ELEMENTS and dtype in (np.float32, np.float64) and _engine_compiles() and available()


def _engine_compiles() -> bool:
    """Whether the active engine lists a kernel of this package (derived from the policy, not from its name)."""
    return any(kernel.__module__.startswith(__name__) for kernel in policy.kernels())


def pays_for(*arrays: Any) -> bool:
    """Whether a compiled kernel should take these arrays (or Tensors, None skipped): the first one `_takes`, and
    all of them C-contiguous with its dtype."""
    data = [getattr(a, "data", a) for a in arrays if a is not None]
    if not data or not all(isinstance(a, np.ndarray) for a in data):
        return False
    first = data[0]
    return all(a.dtype == first.dtype and a.flags.c_contiguous for a in data) and _takes(first)


def compiled_loops() -> ModuleType:
    """The compiled loops (imports Numba, and loads or compiles a loop on its first call)."""
    from convolve.engines.compiled import loops as compiled_loops

    return compiled_loops


def col2im_loop(layout: str, dx: np.ndarray | None) -> Callable[..., None] | None:
    """The compiled col2im adder ("nhwc" or "nchw") for an input gradient `dx` (any strides), or None when NumPy
    should add."""
    if dx is None or not _takes(dx):
        return None
    loops = compiled_loops()
    return loops.col2im_nhwc_add if layout == "nhwc" else loops.col2im_nchw_add


def run_ranges(task: Callable[[int, int], None], total: int, bytes_per_item: int) -> None:
    """task(start, stop) over [0, total) in ranges of ~RANGE_BYTES, on convolve's threads. Every range writes its
    own outputs and reduces only within itself, so threads take ranges first-come: the result is the same
    whichever thread runs a range, and a thread slowed by another process does not hold the others up."""
    step = max(1, RANGE_BYTES // max(1, bytes_per_item))
    chunks: Sequence[slice] = [slice(i, min(i + step, total)) for i in range(0, total, step)]
    run_chunks(lambda s, _: task(s.start, s.stop), chunks, lambda: None, first_come=True)
