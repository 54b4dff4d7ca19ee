"""The engines' shared scaffolding: batch chunks of a few MB, per-thread reusable buffers, and the thread runner.

Batch chunks (`batch_chunks`): the tuned kernels process the batch in chunks whose working set (a column matrix,
a tile array) stays under a budget of a few MB, in buffers that are reused from chunk to chunk (no page faults),
and rebuild in backward what they would otherwise cache (benchmarks/RESULTS.md "Performance").

Threads: the kernels split the batch into chunks; `run_chunks` hands the chunks to as many threads as
OpenBLAS is currently allowed (so `threadpoolctl.threadpool_limits(1)` or OPENBLAS_NUM_THREADS=1 also make the
convolutions single-threaded), and meanwhile sets OpenBLAS itself to one thread: each chunk's GEMM is then a
single-threaded call, which avoids OpenBLAS's slow 2-thread tall-skinny products and its spinning barriers on a
loaded machine (benchmarks/RESULTS.md). NumPy releases the GIL inside GEMMs, copies and ufuncs, so the threads overlap.

The OpenBLAS thread count is read and set through `ctypes` on the library NumPy loaded (found in
/proc/self/maps; a few microseconds per call, unlike threadpoolctl's ~0.7 ms context manager). When it cannot
be found (another BLAS, another OS), everything runs on the calling thread. Chunks with disjoint outputs go to
whichever thread is free. Chunks whose results are summed (weight gradients) keep one partial sum per chunk, added
in chunk order (`sum_over_chunks`: first-come too); Winograd's, whose sums are large, one per thread with a static
assignment (thread t takes chunks t, t + T, ...). Either way seeded runs are bit-reproducible for a given thread
count.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import numpy as np  # also loads the BLAS library whose symbols are looked up below

__all__ = ["COLS_BUDGET_BYTES", "Workspace", "batch_chunks", "blas_threads", "blas_threads_for", "get_num_threads",
           "guided_chunks", "one_blas_thread", "pad_into", "run_chunks", "set_num_threads", "sum_over_chunks"]

W = TypeVar("W")

# Upper bound on the bytes of one chunk's column matrix (measured best at 2-8 MB: benchmarks/RESULTS.md).
COLS_BUDGET_BYTES = 4 * 2**20

_SET_NAMES = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GET_NAMES = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")


def _find_openblas() -> tuple[Callable[[int], None], Callable[[], int]] | None:
    """(set, get) of the OpenBLAS thread count of the library NumPy uses, or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        setter = next((getattr(lib, s) for s in _SET_NAMES if hasattr(lib, s)), None)
        getter = next((getattr(lib, g) for g in _GET_NAMES if hasattr(lib, g)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
            return setter, getter
    return None


# A thread is worth starting only for at least this many chunks (measured: LeNet-5's 2- and 3-chunk layers ran a
# training step in 45 ms on two threads vs 25 ms on one; ResNet-20 and VGG gain 1.4-1.5x from two threads).
MIN_CHUNKS_PER_THREAD = 2

_BLAS = _find_openblas()
_override: int | None = None  # set_num_threads() value; None follows OpenBLAS's own setting
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_hold_lock = threading.Lock()
_hold_depth = 0  # open one_blas_thread() blocks, over all threads (OpenBLAS's thread count is per process)
_held_from = 1  # OpenBLAS's thread count when the outermost block opened


def blas_threads() -> int:
    """OpenBLAS's current thread count (1 when the library was not found)."""
    return 1 if _BLAS is None else max(1, int(_BLAS[1]()))


def _user_blas_threads() -> int:
    """OpenBLAS's thread count as the user set it: the count before `one_blas_thread` lowered it."""
    return _held_from if _hold_depth else blas_threads()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Hold OpenBLAS to one thread for the block (every kernel's forward and backward: `engines.kernel.Kernel`).

    The kernels split their work over convolve's own threads. An OpenBLAS call that spreads over OpenBLAS's threads
    leaves them spinning for a while after it returns, on the cores the chunk threads need: Winograd's small filter
    transforms did that and slowed the whole VGG step at 2 threads by a quarter (benchmarks/RESULTS.md, "Third pass").
    A GEMM big enough to pay for OpenBLAS's threads asks for them inside the block with `blas_threads_for`.
    Blocks nest, also across threads; the outermost restores the user's setting.
    """
    global _hold_depth, _held_from
    if _BLAS is None:
        yield
        return
    with _hold_lock:
        if _hold_depth == 0:
            _held_from = blas_threads()
            if _held_from > 1:
                _BLAS[0](1)
        _hold_depth += 1
    try:
        yield
    finally:
        with _hold_lock:
            _hold_depth -= 1
            if _hold_depth == 0 and _held_from > 1:
                _BLAS[0](_held_from)


def set_num_threads(n: int | None) -> None:
    """Threads the convolutions use over batch chunks; None (default) follows OpenBLAS's thread count."""
    global _override
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"set_num_threads: `n` must be a positive int or None, got {n!r}")
    _override = n


def get_num_threads() -> int:
    """Threads the next chunked convolution will use."""
    if _BLAS is None:
        return 1
    return _override if _override is not None else _user_blas_threads()


# A GEMM issued outside the chunk threads (linear layers) uses OpenBLAS's own threads only from this many
# multiply-adds on (~1 ms of work): below it the hand-off costs more than it saves, and on a busy machine
# OpenBLAS's spinning threads made a LeNet-5 step take 2.2x the CPU time of one thread (68 vs 31 ms).
BLAS_THREADING_MIN_MACS = 1 << 26


@contextmanager
def blas_threads_for(macs: int) -> Iterator[None]:
    """Run the block's GEMM (of `macs` multiply-adds) on one OpenBLAS thread when it is small, else on up to
    `get_num_threads()` (at most the user's OpenBLAS setting); OpenBLAS's current setting is restored afterwards."""
    previous = blas_threads()
    wanted = 1 if macs < BLAS_THREADING_MIN_MACS else min(_user_blas_threads(), get_num_threads())
    if _BLAS is None or wanted == previous:
        yield
        return
    _BLAS[0](wanted)
    try:
        yield
    finally:
        _BLAS[0](previous)


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None or _pool._max_workers < workers:  # created once, grown if asked for more threads
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convolve")
        return _pool


def run_chunks(task: Callable[[slice, W], None], chunks: Sequence[slice], make: Callable[[], W], *,
               first_come: bool = False) -> list[W]:
    """Run task(chunk, workspace) over every chunk, OpenBLAS held to one thread; one workspace per thread.

    OpenBLAS is held to one thread even when the chunks run on the calling thread alone: with 2 threads,
    `np.matmul(a, b, out=...)` on these shapes was measured 7x slower than with 1 (8.0 ms vs 1.2 ms).
    `first_come=True` lets each thread take the next chunk when it is free instead of a fixed share: for tasks
    whose result does not depend on which thread ran a chunk (disjoint outputs, no per-thread partial sums), so
    that a thread slowed by another process does not hold the others up.
    """
    threads = min(get_num_threads(), len(chunks) // MIN_CHUNKS_PER_THREAD)
    previous = blas_threads()
    if previous > 1 and _BLAS is not None:
        _BLAS[0](1)
    try:
        if threads <= 1:
            ws = make()
            for chunk in chunks:
                task(chunk, ws)
            return [ws]
        return _run_threaded(task, chunks, make, threads, first_come)
    finally:
        if previous > 1 and _BLAS is not None:
            _BLAS[0](previous)


def _run_threaded(task: Callable[[slice, W], None], chunks: Sequence[slice], make: Callable[[], W],
                  threads: int, first_come: bool) -> list[W]:
    """Thread t (the calling thread is t = 0) runs chunks t, t + threads, ... with its own workspace.

    The assignment is static, not first-come: per-thread partial sums (weight gradients) then always cover the
    same chunks and are added in the same order, so seeded runs are bit-reproducible for a given thread count.
    With `first_come`, the threads share one iterator over the chunks instead (its `next` is atomic under the GIL).
    """
    workspaces = [make() for _ in range(threads)]
    shared = iter(chunks)

    def worker(t: int) -> None:
        for chunk in shared if first_come else chunks[t::threads]:
            task(chunk, workspaces[t])

    futures = [_executor(threads - 1).submit(worker, t) for t in range(1, threads)]
    worker(0)
    for f in futures:
        f.result()
    return workspaces


def sum_over_chunks(task: Callable[[slice, np.ndarray, W], None], chunks: Sequence[slice], make: Callable[[], W],
                    shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The sum over chunks of task(chunk, partial, workspace), which adds its chunk's share into the zeroed `partial`.

    Each chunk has its own partial sum, added to the others in chunk order at the end: the result does not depend
    on which thread ran a chunk, so the chunks go first-come (a thread that starts late or runs slower takes fewer
    of them) and seeded runs stay bit-reproducible. For small results (weight gradients) only: one per chunk.
    """
    partials = np.zeros((len(chunks), *shape), dtype=dtype)
    slot = {chunk.start: i for i, chunk in enumerate(chunks)}
    run_chunks(lambda chunk, ws: task(chunk, partials[slot[chunk.start]], ws), chunks, make, first_come=True)
    total = partials[0]
    for partial in partials[1:]:
        total += partial
    return total


def guided_chunks(n: int, smallest: int = 2) -> list[slice]:
    """Slices of a batch of `n` for chunks taken first come: each is 1/(2T) of what is left (T threads), at least
    `smallest`, so they shrink toward the end and the threads finish within a small chunk of each other (OpenMP's
    `schedule(guided)`). The layout depends only on `n` and T (partial sums per chunk stay bit-reproducible).

    Measured on ResNet-20 at 2 threads (batch 128: chunks of 32, 24, 18, ... 2 images instead of 16 of 8; in-process,
    alternating): the threads' idle time at the end of the direct convolutions' calls fell from ~22 to ~10
    thread-ms per step (benchmarks/RESULTS.md, "Sixth pass").
    """
    share = 2 * get_num_threads()
    chunks, start = [], 0
    while start < n:
        stop = min(n, start + max(smallest, -(-(n - start) // share)))
        chunks.append(slice(start, stop))
        start = stop
    return chunks


# A layer with too few chunks to give each thread MIN_CHUNKS_PER_THREAD of them is cut finer (chunks of at
# least SPLIT_MIN_BYTES), so that small layers (LeNet-5's: 2-3 chunks of 4 MB) use the threads too (measured:
# LeNet-5 step at 2 threads 25.7 ms with the finer chunks, 42.2 ms without, 34.6 ms at 1 thread).
SPLIT_MIN_BYTES = 1 << 19


def batch_chunks(n: int, bytes_per_item: int, budget: int | None = None) -> list[slice]:
    """Slices of the batch such that each chunk's working set stays under `budget` bytes (COLS_BUDGET_BYTES),
    and, when threads are on, enough chunks for every thread (each at least SPLIT_MIN_BYTES), their number a
    multiple of the thread count where the batch allows (5 chunks on 2 threads would leave one idle for a fifth)."""
    budget = COLS_BUDGET_BYTES if budget is None else budget
    item = max(1, bytes_per_item)
    step = max(1, budget // item)
    threads = get_num_threads()
    wanted = threads * MIN_CHUNKS_PER_THREAD
    if wanted > MIN_CHUNKS_PER_THREAD and -(-n // step) < wanted:
        step = min(step, max(-(-n // wanted), -(-SPLIT_MIN_BYTES // item)))
    count = -(-n // step)
    if threads > 1 and count > 1 and count % threads:
        balanced = -(-count // threads) * threads  # the next multiple of the thread count
        step = max(1, -(-n // balanced))
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


class Workspace:
    """Per-thread reusable buffers: a zero-bordered padded chunk and a column-matrix chunk."""

    def __init__(self, chunk: int, padded: tuple[int, int, int], cols_len: int, dtype: np.dtype) -> None:
        self.xp = np.zeros((chunk, *padded), dtype=dtype)  # padded chunk; borders stay zero
        self.cols = np.empty(cols_len, dtype=dtype)
        self.y = np.empty(0, dtype=dtype)  # GEMM output chunk when the output is not channels-last


def pad_into(buf: np.ndarray, src: np.ndarray, pads: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Copy NHWC `src` (any strides) into the zero-bordered (n, Hp, Wp, C) `buf`; negative pads crop `src`."""
    (top, _), (left, _) = pads
    h, w = src.shape[1:3]
    y0, x0 = max(top, 0), max(left, 0)  # where src lands in buf
    sy, sx = max(-top, 0), max(-left, 0)  # how much of src is cropped at the start
    hh, ww = min(h - sy, buf.shape[1] - y0), min(w - sx, buf.shape[2] - x0)
    buf[:, y0:y0 + hh, x0:x0 + ww] = src[:, sy:sy + hh, sx:sx + ww]
    return buf
