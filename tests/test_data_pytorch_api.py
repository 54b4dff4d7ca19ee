"""The DataLoader, samplers, default_collate and TensorDataset against torch.utils.data (the oracle)."""

from __future__ import annotations

import collections
import threading

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import convolve as cv
from convolve.data import (
    ArrayDataset,
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    default_collate,
    random_split,
)

Point = collections.namedtuple("Point", "x y")


def as_numpy(batch):
    """A collated batch (ours or torch's) as nested lists/dicts of ndarrays, so the two can be compared."""
    if isinstance(batch, cv.Tensor | torch.Tensor):
        return np.asarray(batch.numpy())
    if isinstance(batch, dict):
        return {k: as_numpy(v) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return ("namedtuple", type(batch).__name__, [as_numpy(v) for v in batch])
    if isinstance(batch, list | tuple):
        return [as_numpy(v) for v in batch]
    return batch


def assert_same(ours, theirs):
    a, b = as_numpy(ours), as_numpy(theirs)
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, (a, b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(ours[k], theirs[k])
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (a, b)
        for x, y in zip(ours, theirs):
            assert_same(x, y)
    elif isinstance(a, tuple):
        assert a[:2] == b[:2]
        for x, y in zip(ours, theirs):
            assert_same(x, y)
    else:
        assert a == b


SAMPLES = {
    "pairs of array and int": [(np.full((2, 3), i, np.float32), i) for i in range(5)],
    "floats and bools": [(float(i) / 2, i % 2 == 0) for i in range(4)],
    "dicts": [{"image": np.ones(3, np.float64) * i, "label": i, "name": f"s{i}"} for i in range(3)],
    "namedtuples": [Point(np.arange(2) + i, float(i)) for i in range(3)],
    "nested lists": [[np.int64(i), [i, float(i)]] for i in range(3)],
}


@pytest.mark.parametrize("kind", SAMPLES)
def test_default_collate_matches_torch(kind):
    samples = SAMPLES[kind]
    assert_same(default_collate(samples), tud.default_collate(samples))


def test_default_collate_stacks_tensors_and_names_bad_samples():
    ours = default_collate([cv.tensor([1.0, 2.0]), cv.tensor([3.0, 4.0])])
    assert ours.shape == (2, 2)
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match=r"found object.*collate_fn"):
        default_collate([object(), object()])


@pytest.mark.parametrize("kind", ["pairs of array and int", "dicts"])
@pytest.mark.parametrize("batch_size,drop_last", [(2, False), (2, True), (5, False), (None, False)])
def test_loader_over_a_list_matches_torch(kind, batch_size, drop_last):
    samples = SAMPLES[kind]
    ours = list(DataLoader(samples, batch_size=batch_size, drop_last=drop_last))
    theirs = list(tud.DataLoader(samples, batch_size=batch_size, drop_last=drop_last))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert_same(a, b)


def test_tensor_dataset_matches_torch():
    x = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    y = np.arange(7)
    ds = TensorDataset(cv.tensor(x), cv.tensor(y))
    tds = tud.TensorDataset(torch.tensor(x), torch.tensor(y))
    assert len(ds) == len(tds)
    assert_same(list(ds[2]), list(tds[2]))
    ours = list(DataLoader(ds, batch_size=3))
    theirs = list(tud.DataLoader(tds, batch_size=3))
    for (a, b), (c, d) in zip(ours, theirs):
        assert_same([a, b], [c, d])
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(cv.zeros(3), cv.zeros(4))


def test_deterministic_samplers_match_torch():
    data = list(range(10))
    assert list(SequentialSampler(data)) == list(tud.SequentialSampler(data))
    for bs, drop in [(3, False), (3, True), (10, False), (4, True)]:
        ours = BatchSampler(SequentialSampler(data), bs, drop)
        theirs = tud.BatchSampler(tud.SequentialSampler(data), bs, drop)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_random_samplers_are_seeded_permutations():
    data = list(range(20))
    a = list(RandomSampler(data, generator=cv.Generator(0)))
    assert sorted(a) == data and a != data
    assert a == list(RandomSampler(data, generator=cv.Generator(0)))
    long = list(RandomSampler(data, num_samples=45, generator=cv.Generator(1)))
    assert len(long) == 45 and sorted(long[:20]) == data and sorted(long[20:40]) == data
    drawn = list(RandomSampler(data, replacement=True, num_samples=100, generator=cv.Generator(2)))
    assert len(drawn) == 100 and set(drawn) <= set(data)  # repeats are certain in 100 draws of 20
    picked = list(SubsetRandomSampler([3, 5, 7], generator=cv.Generator(0)))
    assert sorted(picked) == [3, 5, 7]


def test_sampler_and_batch_sampler_drive_the_loader():
    samples = [(np.float32(i), i) for i in range(10)]
    loader = DataLoader(samples, batch_size=4, sampler=[9, 8, 7, 6, 5])
    assert [b[1].tolist() for b in loader] == [[9, 8, 7, 6], [5]]
    loader = DataLoader(samples, batch_sampler=[[1, 2], [0]])
    assert [b[1].tolist() for b in loader] == [[1, 2], [0]] and len(loader) == 2
    for bad in (dict(sampler=[0], shuffle=True), dict(batch_sampler=[[0]], batch_size=2),
                dict(batch_sampler=[[0]], drop_last=True)):
        with pytest.raises(ValueError, match="mutually exclusive"):
            DataLoader(samples, **bad)


def test_workers_keep_the_seeded_order():
    ds = ArrayDataset(np.arange(60, dtype=np.uint8).reshape(60, 1, 1), np.arange(60))

    def order(**kw):
        loader = DataLoader(ds, batch_size=7, shuffle=True, generator=cv.Generator(3), **kw)
        return np.concatenate([y.numpy() for _, y in loader])

    np.testing.assert_array_equal(order(num_workers=2), order(num_workers=0))
    pairs = [(np.float32(i), i) for i in range(30)]
    seen = []

    def collate(batch):
        seen.append(threading.current_thread().name)
        return default_collate(batch)

    loader = DataLoader(pairs, batch_size=4, shuffle=True, generator=cv.Generator(5), num_workers=2,
                        collate_fn=collate)
    got = np.concatenate([y.numpy() for _, y in loader])
    again = np.concatenate([y.numpy() for _, y in DataLoader(pairs, batch_size=4, shuffle=True,
                                                              generator=cv.Generator(5))])
    np.testing.assert_array_equal(got, again)
    assert all(name.startswith("convolve-worker") for name in seen)
    assert not [t for t in threading.enumerate() if t.name.startswith("convolve-worker")]


def test_worker_errors_reach_the_caller():
    class Broken:
        def __len__(self):
            return 8

        def __getitem__(self, i):
            if i == 5:
                raise KeyError("item 5 is broken")
            return np.float32(i)

    with pytest.raises(KeyError, match="item 5 is broken"):
        list(DataLoader(Broken(), batch_size=2, num_workers=2))


def test_array_dataset_takes_float_nchw_and_items_are_tensors():
    x = np.random.default_rng(0).standard_normal((6, 2, 3, 3)).astype(np.float32)
    ds = ArrayDataset(x, np.arange(6) % 2)
    image, label = ds[1]
    assert isinstance(image, cv.Tensor) and image.shape == (2, 3, 3) and label == 1
    np.testing.assert_array_equal(image.numpy(), x[1])
    xb, _ = next(iter(DataLoader(ds, batch_size=6)))
    np.testing.assert_array_equal(xb.numpy(), x)
    with pytest.raises(ValueError, match=r"float `data` must be 4-D \(N, C, H, W\).*TensorDataset"):
        ArrayDataset(x[:, 0], np.arange(6))


def test_collate_fn_and_subsets_of_any_dataset():
    ds = ArrayDataset(np.arange(12, dtype=np.uint8).reshape(3, 2, 2), np.arange(3))
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=lambda b: b)))
    assert len(batch) == 3 and batch[0][0].shape == (1, 2, 2)  # the user's collate sees ds[i] samples
    pairs = [(np.float32(i), i) for i in range(10)]
    sub = Subset(pairs, [4, 2])
    assert len(sub) == 2 and sub[1] == pairs[2]
    parts = random_split(pairs, [7, 3], generator=cv.Generator(0))
    assert sorted(int(p[1]) for part in parts for p in (part[i] for i in range(len(part)))) == list(range(10))
    tsub = Subset(TensorDataset(cv.arange(10)), [1, 3])
    assert next(iter(DataLoader(tsub, batch_size=2)))[0].tolist() == [1, 3]
    with pytest.raises(ValueError, match=r"`transform` .* applies to convolve image datasets"):
        DataLoader(pairs, transform=lambda x: x)


def test_pin_memory_warns_and_bad_worker_arguments():
    with pytest.warns(UserWarning, match="pin_memory=True` has no effect"):
        DataLoader([1, 2], pin_memory=True)
    with pytest.warns(UserWarning, match="`multiprocessing_context` has no effect: workers are threads"):
        DataLoader([1, 2], num_workers=1, multiprocessing_context="spawn")
    with pytest.raises(ValueError, match="`num_workers` must be a non-negative integer, got -1"):
        DataLoader([1, 2], num_workers=-1)
    with pytest.raises(ValueError, match=r"`prefetch_factor`.*needs num_workers > 0"):
        DataLoader([1, 2], prefetch_factor=2)


def test_weighted_sampler_concat_dataset_and_timeout():
    from convolve.data import ConcatDataset, WeightedRandomSampler

    drawn = list(WeightedRandomSampler([0.0, 1.0, 3.0], 400, generator=cv.Generator(0)))
    assert set(drawn) == {1, 2} and 0.65 < drawn.count(2) / 400 < 0.85
    assert sorted(WeightedRandomSampler([1, 1, 1], 3, replacement=False)) == [0, 1, 2]
    with pytest.raises(ValueError, match="cannot draw 3 samples without replacement from 2"):
        WeightedRandomSampler([1, 0, 1], 3, replacement=False)
    both = TensorDataset(cv.arange(2)) + TensorDataset(cv.arange(3))
    assert isinstance(both, ConcatDataset) and len(both) == 5 and both[2][0].item() == 0 and both[-1][0].item() == 2

    class Slow:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            threading.Event().wait(1.0)
            return i

    with pytest.raises(RuntimeError, match=r"DataLoader timed out after 0.05 seconds"):
        list(DataLoader(Slow(), num_workers=1, timeout=0.05))


def test_leaving_a_worker_loop_early_stops_the_workers():
    import gc

    loader = DataLoader([(np.float32(i), i) for i in range(200)], batch_size=2, num_workers=2)
    for i, _ in enumerate(loader):
        if i == 3:
            break
    gc.collect()
    assert not [t for t in threading.enumerate() if t.name.startswith("convolve-worker")]
    assert sum(len(b[1]) for b in loader) == 200  # and the loader still works afterwards


def test_worker_init_fn_gets_each_worker_id_once():
    seen = []
    loader = DataLoader(list(range(40)), batch_size=2, num_workers=3, worker_init_fn=seen.append)
    assert [int(v) for b in loader for v in b.tolist()] == list(range(40))
    assert sorted(seen) == [0, 1, 2]


def test_get_worker_info_inside_and_outside_workers():
    from convolve.data import get_worker_info

    class Where:
        def __len__(self):
            return 6

        def __getitem__(self, i):
            info = get_worker_info()
            return -1 if info is None else info.id * 100 + info.num_workers

    assert get_worker_info() is None
    assert set(next(iter(DataLoader(Where(), batch_size=6))).tolist()) == {-1}
    seen = {v for b in DataLoader(Where(), batch_size=1, num_workers=2) for v in b.tolist()}
    assert seen <= {2, 102} and seen


def _range_stream(lib):
    """An IterableDataset over 0..9 that shards itself across workers (PyTorch's documented recipe)."""

    class Stream(lib.IterableDataset):
        def __iter__(self):
            info = lib.get_worker_info()
            if info is None:
                return iter(range(10))
            return iter(range(info.id, 10, info.num_workers))

    return Stream()


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("batch_size,drop_last", [(3, False), (3, True), (None, False)])
def test_iterable_dataset_batches_as_torch(num_workers, batch_size, drop_last):
    import convolve.data as cd

    def plain(b):
        return b.tolist() if hasattr(b, "tolist") else b  # batch_size=None: the samples themselves

    ours = [plain(b) for b in DataLoader(_range_stream(cd), batch_size=batch_size, drop_last=drop_last,
                                         num_workers=num_workers)]
    theirs = [plain(b) for b in tud.DataLoader(_range_stream(tud), batch_size=batch_size, drop_last=drop_last,
                                               num_workers=num_workers)]
    assert ours == theirs
    with pytest.raises(ValueError, match="IterableDataset: expected unspecified shuffle option"):
        DataLoader(_range_stream(cd), shuffle=True)
