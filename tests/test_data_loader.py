"""DataLoader: batching, seeded shuffling, transforms, background prefetch (incl. early exit), errors."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
from convolve.data import ArrayDataset, DataLoader, Digits, Subset, random_split
from convolve.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToTensor


def indexed(n: int, colour: bool = False) -> ArrayDataset:
    """Image k is filled with k % 256 and labelled k, so a batch tells which items it holds."""
    shape = (n, 4, 5, 3) if colour else (n, 4, 5)
    data = (np.arange(n) % 256).astype(np.uint8).reshape((n,) + (1,) * (len(shape) - 1)) * np.ones(shape, np.uint8)
    return ArrayDataset(data, np.arange(n))


class CountingDataset(ArrayDataset):
    calls = 0

    def get_batch(self, indices):
        CountingDataset.calls += 1
        return super().get_batch(indices)


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "convolve-prefetch"]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), drop_last=st.booleans(), prefetch=st.booleans())
def test_batches_cover_the_dataset_in_order(n, batch_size, drop_last, prefetch):
    loader = DataLoader(indexed(n), batch_size=batch_size, drop_last=drop_last, prefetch=prefetch)
    batches = list(loader)
    assert len(batches) == len(loader) == (n // batch_size if drop_last else -(-n // batch_size))
    labels = np.concatenate([y.data for _, y in batches]) if batches else np.zeros(0, np.int64)
    kept = len(loader) * batch_size if drop_last else n
    np.testing.assert_array_equal(labels, np.arange(kept))
    for x, y in batches:
        assert x.dtype == np.float32 and x.shape == (len(y), 1, 4, 5) and y.dtype == np.int64
        np.testing.assert_allclose(x.data[:, 0, 0, 0], (y.data % 256) / 255, rtol=1e-6)
        assert not x.requires_grad


def test_colour_images_come_out_nchw():
    x, _ = next(iter(DataLoader(indexed(5, colour=True), batch_size=5)))
    assert x.shape == (5, 3, 4, 5)


def test_one_gather_per_batch():
    CountingDataset.calls = 0
    ds = CountingDataset(np.zeros((100, 2, 2), np.uint8), np.zeros(100, np.int64))
    assert sum(len(y) for _, y in DataLoader(ds, batch_size=32, shuffle=True)) == 100
    assert CountingDataset.calls == 4


def test_shuffle_is_seeded_and_new_each_epoch():
    ds = indexed(50)

    def epoch_orders(seed, epochs=2, prefetch=True):
        loader = DataLoader(ds, batch_size=7, shuffle=True, generator=cv.Generator(seed), prefetch=prefetch)
        return [np.concatenate([y.data for _, y in loader]) for _ in range(epochs)]

    first, second = epoch_orders(0)
    assert sorted(first.tolist()) == list(range(50)) and sorted(second.tolist()) == list(range(50))
    assert not np.array_equal(first, np.arange(50)) and not np.array_equal(first, second)
    for a, b in zip(epoch_orders(0, prefetch=False), (first, second)):
        np.testing.assert_array_equal(a, b)  # same seed, same orders, with or without prefetch
    assert not np.array_equal(epoch_orders(1)[0], first)


def test_global_seed_drives_shuffle_without_generator():
    ds = indexed(30)
    cv.manual_seed(5)
    a = np.concatenate([y.data for _, y in DataLoader(ds, batch_size=30, shuffle=True)])
    cv.manual_seed(5)
    b = np.concatenate([y.data for _, y in DataLoader(ds, batch_size=30, shuffle=True)])
    np.testing.assert_array_equal(a, b)


def test_random_transforms_are_reproducible_through_the_loader():
    ds = indexed(64, colour=True)

    def run(prefetch):
        pipeline = Compose(
            [
                ToTensor(),
                RandomCrop(4, padding=1, generator=cv.Generator(2)),
                RandomHorizontalFlip(generator=cv.Generator(3)),
            ]
        )
        loader = DataLoader(
            ds, batch_size=16, shuffle=True, generator=cv.Generator(1), transform=pipeline, prefetch=prefetch
        )
        return [x.data for x, _ in loader]

    for a, b in zip(run(True), run(False)):
        np.testing.assert_array_equal(a, b)


def test_transform_precedence_and_digits_scale():
    x, _ = next(iter(DataLoader(Digits(), batch_size=2000)))
    assert x.shape == (1437, 1, 8, 8) and float(x.data.max()) == 1.0  # ToTensor(max_value=16) by default
    ds = Digits(transform=Compose([ToTensor(max_value=16), Normalize([0.5], [0.5])]))
    x, _ = next(iter(DataLoader(ds, batch_size=10)))
    assert float(x.data.min()) == -1.0  # the dataset's transform is used
    x, _ = next(iter(DataLoader(ds, batch_size=10, transform=ToTensor())))
    assert float(x.data.max()) <= 16 / 255 + 1e-7  # the loader's transform wins
    image, label = ds[0]
    assert image.shape == (1, 8, 8) and image.dtype == np.float32 and isinstance(label, int)


def test_prefetch_thread_stops_when_the_loop_ends_early():
    before = len(prefetch_threads())
    loader = DataLoader(indexed(1000), batch_size=2)
    for i, _ in enumerate(loader):
        if i == 3:
            break
    gc.collect()
    assert len(prefetch_threads()) == before
    it = iter(loader)
    next(it)
    assert len(prefetch_threads()) == before + 1
    it.close()
    assert len(prefetch_threads()) == before
    assert sum(len(y) for _, y in loader) == 1000  # and the loader still works afterwards
    assert len(prefetch_threads()) == before


def test_errors_on_the_prefetch_thread_reach_the_caller():
    def boom(images):
        raise RuntimeError("transform exploded")

    before = len(prefetch_threads())
    with pytest.raises(RuntimeError, match="transform exploded"):
        list(DataLoader(indexed(10), batch_size=3, transform=boom))
    assert len(prefetch_threads()) == before


def test_transform_must_produce_float_nchw():
    with pytest.raises(
        TypeError, match=r"DataLoader: the transform must return a float \(N, C, H, W\) array, got uint8"
    ):
        list(DataLoader(indexed(4), batch_size=2, transform=lambda x: x, prefetch=False))


def test_bad_arguments():
    ds = indexed(4)
    with pytest.raises(ValueError, match=r"DataLoader: `batch_size` must be a positive integer or None, got 0"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(TypeError, match=r"DataLoader: `dataset` must have __len__ and __getitem__.*got int"):
        DataLoader(3)
    with pytest.raises(TypeError, match=r"DataLoader: `generator` must be a convolve.Generator, got Generator"):
        DataLoader(ds, generator=np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"DataLoader: `transform` must be callable, got str"):
        DataLoader(ds, transform="totensor")


def test_subset_and_random_split():
    ds = indexed(10)
    sub = Subset(ds, [7, 2, 5])
    assert sub.targets.tolist() == [7, 2, 5] and sub.pixel_max == 255 and len(sub) == 3
    _, y = next(iter(DataLoader(sub, batch_size=3)))
    assert y.data.tolist() == [7, 2, 5]
    parts = random_split(ds, [6, 4], generator=cv.Generator(0))
    assert [len(p) for p in parts] == [6, 4]
    assert sorted(np.concatenate([p.targets for p in parts]).tolist()) == list(range(10))
    again = random_split(ds, [0.6, 0.4], generator=cv.Generator(0))
    np.testing.assert_array_equal(again[0].targets, parts[0].targets)
    assert [len(p) for p in random_split(indexed(11), [0.5, 0.5])] == [6, 5]
    with pytest.raises(ValueError, match=r"random_split: `lengths` must be non-negative counts summing to .* \(10\)"):
        random_split(ds, [5, 4])
    with pytest.raises(ValueError, match=r"Subset: `indices` must be 1-D and within 0..9"):
        Subset(ds, [10])
