"""Background batch production: one prefetch thread one batch ahead, or a pool of worker threads that fetch
batches concurrently and hand them back in sampler order."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, NamedTuple


def _put(q: queue.Queue[Any], stop: threading.Event, entry: tuple[str, Any]) -> bool:
    """Block until there is room in `q`; False when `stop` was set meanwhile."""
    while not stop.is_set():
        try:
            q.put(entry, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _produce(source: Iterator[Any], q: queue.Queue[Any], stop: threading.Event) -> None:
    """The prefetch thread's body; it holds no reference to the _Prefetcher, so dropping that stops it."""
    try:
        for item in source:
            if not _put(q, stop, ("item", item)):
                return
        _put(q, stop, ("done", None))
    except BaseException as exc:  # handed to the consumer, raised there
        _put(q, stop, ("error", exc))
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


class Prefetcher:
    """Runs a batch iterator on a daemon thread, one batch ahead; `close()` (or garbage collection) stops it."""

    def __init__(self, source: Iterator[Any]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(
            target=_produce, args=(source, self._queue, self._stop), name="convolve-prefetch", daemon=True
        )
        self._thread.start()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == "item":
            return value
        self._finished = True
        self._thread.join()
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the background thread and wait for it (called when a loop ends early)."""
        self._finished = True
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __del__(self) -> None:
        self.close()


class WorkerInfo(NamedTuple):
    """What `get_worker_info()` returns inside a worker thread (`seed` is None: workers share the generators)."""

    id: int
    num_workers: int
    seed: int | None
    dataset: Any


_local = threading.local()


def get_worker_info() -> WorkerInfo | None:
    """In a DataLoader worker thread, its `WorkerInfo`; elsewhere None (as `torch.utils.data.get_worker_info`)."""
    return getattr(_local, "info", None)


def set_worker_info(info: WorkerInfo) -> None:
    """Mark the calling thread as DataLoader worker `info.id`."""
    _local.info = info


def _worker_initializer(num_workers: int, worker_init_fn: Callable[[int], None] | None, dataset: Any
                        ) -> Callable[[], None]:
    """Runs in each new worker thread: gives it the next worker id and calls `worker_init_fn(worker_id)`."""
    ids, lock = iter(range(num_workers)), threading.Lock()

    def initialize() -> None:
        with lock:
            worker_id = next(ids)
        set_worker_info(WorkerInfo(worker_id, num_workers, None, dataset))
        if worker_init_fn is not None:
            worker_init_fn(worker_id)

    return initialize


class WorkerPool:
    """`fetch(batch)` for every batch of `batches` on `num_workers` threads, at most `prefetch_factor` batches per
    worker in flight, yielded in the order of `batches` whatever order the workers finish in."""

    def __init__(self, fetch: Callable[[Any], Any], batches: Sequence[Any], num_workers: int, prefetch_factor: int,
                 worker_init_fn: Callable[[int], None] | None = None, timeout: float = 0, dataset: Any = None
                 ) -> None:
        self._timeout = timeout or None
        # the initializer must not reference self: the worker threads hold it, and dropping the pool (a loop left
        # early) has to let `__del__` stop them
        self._pool = ThreadPoolExecutor(num_workers, thread_name_prefix="convolve-worker",
                                        initializer=_worker_initializer(num_workers, worker_init_fn, dataset))
        self._fetch, self._todo = fetch, iter(batches)
        self._pending: deque[Future[Any]] = deque()
        for _ in range(num_workers * prefetch_factor):
            self._submit()

    def _submit(self) -> None:
        batch = next(self._todo, None)
        if batch is not None:
            self._pending.append(self._pool.submit(self._fetch, batch))

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if not self._pending:
            self.close()
            raise StopIteration
        future = self._pending.popleft()
        self._submit()
        try:
            return future.result(timeout=self._timeout)
        except FutureTimeout:
            self.close(wait=False)
            raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds waiting for a batch from the "
                               "workers") from None
        except BaseException:
            self.close()
            raise

    def close(self, wait: bool = True) -> None:
        """Cancel what has not started and (unless a batch timed out) wait for the worker threads to end."""
        self._pending.clear()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def __del__(self) -> None:
        self.close()
