"""DataLoader with PyTorch's signature over any map-style dataset; whole batches of array datasets are gathered in
one vectorized index, transformed, and prefetched one batch ahead (or fetched by worker threads)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from convolve.data._prefetch import Prefetcher, WorkerPool
from convolve.data.collate import default_collate, default_convert
from convolve.data.dataset import ArrayDataset
from convolve.data.iterable import IterableDataset, iterate_stream
from convolve.data.sampler import BatchSampler, RandomSampler, SequentialSampler, _check_generator
from convolve.tensor import Tensor


class DataLoader:
    """Iterate over `dataset` in batches, as `torch.utils.data.DataLoader`.

    Any dataset with `__len__` and `__getitem__` works: samples are fetched one by one and batched by
    `collate_fn` (`default_collate`: tensors/arrays stacked, numbers to Tensors, tuples/dicts field by field).
    A dataset with `get_batch(indices)` (convolve's image datasets, `TensorDataset`) is gathered a whole batch
    at a time instead, unless a `collate_fn` is given; image datasets then yield (images float32 (N, C, H, W),
    labels int64 (N,)), through `transform` (a batch transform), else the dataset's own.

    Order: `shuffle` draws a fresh permutation each epoch from `generator` (the global one when None); `sampler`
    or `batch_sampler` replace that. The epoch's batches are drawn when iteration starts, so a seed fixes the
    order whatever `num_workers` is. `num_workers > 0` fetches batches on that many worker *threads* (NumPy
    releases the GIL in its gathers and math; pure-Python `__getitem__` code does not run in parallel) and
    yields them in order (`timeout` > 0: seconds to wait for a batch before raising). With `num_workers == 0`,
    `prefetch` prepares the next batch on a background thread.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Iterable[Any] | None = None,
        batch_sampler: Iterable[Any] | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        prefetch: bool = True,
    ) -> None:
        self.stream = isinstance(dataset, IterableDataset)
        if not self.stream and (not hasattr(dataset, "__len__")
                                or not (hasattr(dataset, "__getitem__") or hasattr(dataset, "get_batch"))):
            raise TypeError(
                f"DataLoader: `dataset` must have __len__ and __getitem__ (a map-style dataset such as a list of "
                f"(input, target) pairs, TensorDataset or a convolve.data dataset) or be an IterableDataset, got "
                f"{type(dataset).__name__}"
            )
        if self.stream:
            for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} option, but "
                                     f"got {name}={value!r}")
        _check_worker_args(num_workers, prefetch_factor, timeout, worker_init_fn, pin_memory)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: `transform` must be callable, got {type(transform).__name__}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: `collate_fn` must be callable, got {type(collate_fn).__name__}")
        self.dataset = dataset
        self.generator = _check_generator(generator, "DataLoader")
        self.batch_size, self.drop_last = _check_batching(batch_size, shuffle, sampler, batch_sampler, drop_last)
        self.sampler = sampler if sampler is not None or self.stream else (
            RandomSampler(dataset, generator=self.generator) if shuffle else SequentialSampler(dataset))
        if batch_sampler is None and self.batch_size is not None and not self.stream:
            batch_sampler = BatchSampler(self.sampler, self.batch_size, self.drop_last)
        self.batch_sampler = batch_sampler
        self.num_workers = int(num_workers)
        self.prefetch_factor = 2 if prefetch_factor is None else int(prefetch_factor)
        self.worker_init_fn = worker_init_fn
        self.collate_fn = collate_fn
        self.transform = transform
        self.prefetch = bool(prefetch)
        self.timeout, self.pin_memory, self.persistent_workers = timeout, pin_memory, persistent_workers
        self.multiprocessing_context = multiprocessing_context
        if multiprocessing_context is not None:
            warnings.warn("DataLoader: `multiprocessing_context` has no effect: workers are threads of this process "
                          "(they share the dataset, so no copy or start method is needed)", stacklevel=2)
        if transform is not None and not self._whole_batches():
            raise ValueError(
                "DataLoader: `transform` (a batch transform) applies to convolve image datasets gathered whole; "
                "for this dataset apply transforms in its __getitem__ or in a `collate_fn`"
            )

    @property
    def shuffle(self) -> bool:
        return isinstance(self.sampler, RandomSampler)

    def __len__(self) -> int:
        if self.stream:  # as PyTorch: the dataset's own length, in batches
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        source = self.batch_sampler if self.batch_sampler is not None else self.sampler
        return len(source)  # type: ignore[arg-type]

    def _whole_batches(self) -> bool:
        """Gather batches with the dataset's vectorized `get_batch` (the fast path)?"""
        return (not self.stream and self.collate_fn is None and self.batch_sampler is not None
                and callable(getattr(self.dataset, "get_batch", None)))

    def _fetch_function(self) -> Callable[[Any], Any]:
        if self.batch_sampler is None:  # batch_size=None: samples one by one, converted but not stacked
            return lambda index: default_convert(self.dataset[index])
        if not self._whole_batches():
            collate = self.collate_fn or default_collate
            return lambda indices: collate([self.dataset[i] for i in indices])
        if isinstance(self.dataset, ArrayDataset):
            transform = self.transform or self.dataset.batch_transform()
            return lambda indices: _image_batch(self.dataset, np.asarray(indices, dtype=np.int64), transform)
        return lambda indices: self.dataset.get_batch(np.asarray(indices, dtype=np.int64))

    def __iter__(self) -> Iterator[Any]:
        if self.stream:
            collate = self.collate_fn or (default_collate if self.batch_size is not None else default_convert)
            produced = iterate_stream(self.dataset, self.batch_size, self.drop_last, collate, self.num_workers,
                                      self.worker_init_fn)
            return Prefetcher(produced) if self.prefetch and self.num_workers == 0 else produced
        batches = list(self.batch_sampler if self.batch_sampler is not None else self.sampler)  # drawn now, in order
        fetch = self._fetch_function()
        if self.num_workers > 0:
            return WorkerPool(fetch, batches, self.num_workers, self.prefetch_factor, self.worker_init_fn,
                              self.timeout, self.dataset)
        produced = (fetch(b) for b in batches)
        return Prefetcher(produced) if self.prefetch else produced


def _image_batch(dataset: ArrayDataset, indices: np.ndarray, transform: Callable[[np.ndarray], Any]
                 ) -> tuple[Tensor, Tensor]:
    """(images float (N, C, H, W), labels int64 (N,)) for `indices`, in one gather and one transform."""
    images, labels = dataset.get_batch(indices)
    x = transform(images)
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype.kind != "f":
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(
            f"DataLoader: the transform must return a float (N, C, H, W) array, got {got}; "
            f"start the pipeline with ToTensor()"
        )
    return Tensor._from_array(x), Tensor._from_array(np.asarray(labels, dtype=np.int64))


def _check_batching(batch_size: Any, shuffle: Any, sampler: Any, batch_sampler: Any, drop_last: Any
                    ) -> tuple[int | None, bool]:
    """PyTorch's rules for which of batch_size/shuffle/sampler/batch_sampler/drop_last may be combined."""
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1
    ):
        raise ValueError(f"DataLoader: `batch_size` must be a positive integer or None, got {batch_size!r}")
    if sampler is not None and shuffle:
        raise ValueError("DataLoader: `sampler` option is mutually exclusive with `shuffle`")
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ValueError(
                "DataLoader: `batch_sampler` option is mutually exclusive with `batch_size`, `shuffle`, `sampler` "
                "and `drop_last`"
            )
        return None, False
    if batch_size is None and drop_last:
        raise ValueError("DataLoader: `batch_size=None` option disables auto-batching and is mutually exclusive "
                         "with `drop_last`")
    return (None if batch_size is None else int(batch_size)), bool(drop_last)


def _check_worker_args(num_workers: Any, prefetch_factor: Any, timeout: Any, worker_init_fn: Any,
                       pin_memory: Any) -> None:
    if isinstance(num_workers, bool) or not isinstance(num_workers, int | np.integer) or num_workers < 0:
        raise ValueError(f"DataLoader: `num_workers` must be a non-negative integer, got {num_workers!r}")
    if prefetch_factor is not None and (num_workers == 0 or not isinstance(prefetch_factor, int)
                                        or prefetch_factor < 1):
        raise ValueError(
            f"DataLoader: `prefetch_factor` (={prefetch_factor!r}) must be a positive int and needs num_workers > 0"
        )
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ValueError(f"DataLoader: `timeout` option should be a non-negative number, got {timeout!r}")
    if worker_init_fn is not None and not callable(worker_init_fn):
        raise TypeError(f"DataLoader: `worker_init_fn` must be callable, got {type(worker_init_fn).__name__}")
    if pin_memory:
        warnings.warn("DataLoader: `pin_memory=True` has no effect: convolve has no accelerator device, every "
                      "tensor already lives in host memory", stacklevel=3)
