"""IterableDataset (a stream of samples, as `torch.utils.data.IterableDataset`) and how the DataLoader batches it.

With `num_workers > 0` every worker thread iterates its own `iter(dataset)`, called inside the thread so that
`get_worker_info()` tells the dataset which shard to produce (as in PyTorch, an unsharded dataset is produced
once per worker); batches are taken from the workers in turn, worker 0 first, as PyTorch's loader does.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from convolve.data._prefetch import WorkerInfo, set_worker_info
from convolve.data.dataset import Dataset


class IterableDataset(Dataset):
    """Base class of datasets that are streams: define `__iter__` (no `__getitem__` or `__len__` needed)."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


def _batches(samples: Iterable[Any], batch_size: int | None, drop_last: bool,
             collate: Callable[[list[Any]], Any]) -> Iterator[Any]:
    """Group a stream of samples into collated batches (each sample converted when `batch_size` is None)."""
    if batch_size is None:
        for sample in samples:
            yield collate(sample)
        return
    batch: list[Any] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            yield collate(batch)
            batch = []
    if batch and not drop_last:
        yield collate(batch)


def iterate_stream(dataset: Any, batch_size: int | None, drop_last: bool, collate: Callable[[Any], Any],
                   num_workers: int, worker_init_fn: Callable[[int], None] | None) -> Iterator[Any]:
    """The loader's batches of an IterableDataset: in this thread, or round-robin over worker threads."""
    if num_workers == 0:
        yield from _batches(dataset, batch_size, drop_last, collate)
        return
    queues: list[queue.Queue[tuple[str, Any]]] = [queue.Queue(maxsize=2) for _ in range(num_workers)]
    stop = threading.Event()

    def work(worker_id: int) -> None:
        out = queues[worker_id]
        try:
            set_worker_info(WorkerInfo(worker_id, num_workers, None, dataset))
            if worker_init_fn is not None:
                worker_init_fn(worker_id)
            for batch in _batches(iter(dataset), batch_size, drop_last, collate):
                while not stop.is_set():
                    try:
                        out.put(("item", batch), timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            out.put(("done", None))
        except BaseException as exc:  # handed to the consumer, raised there
            out.put(("error", exc))

    threads = [threading.Thread(target=work, args=(i,), name=f"convolve-worker_{i}", daemon=True)
               for i in range(num_workers)]
    for t in threads:
        t.start()
    try:
        live = list(range(num_workers))
        while live:
            for worker_id in list(live):
                kind, value = queues[worker_id].get()
                if kind == "item":
                    yield value
                elif kind == "done":
                    live.remove(worker_id)
                else:
                    raise value
    finally:
        stop.set()
        for q in queues:  # unblock producers waiting on a full queue
            while not q.empty():
                q.get_nowait()
        for t in threads:
            t.join()
