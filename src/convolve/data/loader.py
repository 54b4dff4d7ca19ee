"""DataLoader: whole batches gathered in one vectorized index, transformed, prefetched one batch ahead."""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from convolve.data.transforms import ToTensor
from convolve.factory import from_numpy
from convolve.random import Generator, rng
from convolve.tensor import Tensor


class DataLoader:
    """Iterate over `dataset` in (images float (N, C, H, W), labels int64 (N,)) Tensor batches.

    The dataset must offer `get_batch(indices)` (every convolve dataset and `ArrayDataset` do). The
    batch transform is `transform`, else `dataset.transform`, else `ToTensor(max_value=dataset.pixel_max)`;
    it must turn the uint8 batch into float (N, C, H, W), so a custom pipeline starts with ToTensor.
    `shuffle` draws a fresh permutation each epoch from `generator` (the global one when None): the
    same seed gives the same order. `prefetch` prepares the next batch on a background thread.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: Generator | None = None,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        prefetch: bool = True,
        sampler: Any = None,
    ) -> None:
        if not callable(getattr(dataset, "get_batch", None)) or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"DataLoader: `dataset` must have __len__ and get_batch(indices) (e.g. a convolve.data dataset "
                f"or ArrayDataset), got {type(dataset).__name__}"
            )
        if not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: `batch_size` must be a positive integer, got {batch_size!r}")
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(f"DataLoader: `generator` must be a convolve.Generator, got {type(generator).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: `transform` must be callable, got {type(transform).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = generator
        self.transform = transform
        self.prefetch = bool(prefetch)
        if sampler is not None and (shuffle or not hasattr(sampler, "__len__")):
            raise ValueError("DataLoader: `sampler` (an iterable of indices with a length, e.g. DistributedSampler) "
                             f"excludes `shuffle=True`, got shuffle={shuffle}, sampler {type(sampler).__name__}")
        self.sampler = sampler

    def __len__(self) -> int:
        n = len(self.dataset if self.sampler is None else self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _pipeline(self) -> Callable[[np.ndarray], np.ndarray]:
        if self.transform is not None:
            return self.transform
        if getattr(self.dataset, "transform", None) is not None:
            return self.dataset.transform
        return ToTensor(max_value=getattr(self.dataset, "pixel_max", 255))

    def _batches(self, order: np.ndarray) -> Iterator[tuple[Tensor, Tensor]]:
        """Gather, transform and wrap each batch of `order` (runs on the prefetch thread when enabled)."""
        transform = self._pipeline()
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            images, labels = self.dataset.get_batch(idx)
            x = transform(images)
            if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype.kind != "f":
                got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
                raise TypeError(
                    f"DataLoader: the transform must return a float (N, C, H, W) array, got {got}; "
                    f"start the pipeline with ToTensor()"
                )
            yield from_numpy(x), from_numpy(np.asarray(labels, dtype=np.int64))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.dataset)
        order = rng(self.generator).permutation(n) if self.shuffle else np.arange(n)  # drawn now, in order
        if self.sampler is not None:
            order = np.fromiter(self.sampler, dtype=np.int64)
        if not self.prefetch:
            return self._batches(order)
        return _Prefetcher(self._batches(order))


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


class _Prefetcher:
    """Runs a batch iterator on a daemon thread, one batch ahead; `close()` (or garbage collection) stops it."""

    def __init__(self, source: Iterator[Any]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(
            target=_produce, args=(source, self._queue, self._stop), name="convolve-prefetch", daemon=True
        )
        self._thread.start()

    def __iter__(self) -> _Prefetcher:
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
