"""convolve.distributed in one process (a group of one), DistributedSampler and SyncBatchNorm against PyTorch.

The multi-process behaviour (2 ranks under mpiexec) is tested in test_distributed_mpi.py.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data.distributed import DistributedSampler as TorchDistributedSampler

import convolve
import convolve.distributed as dist
from convolve import nn, optim
from convolve.autograd import Function, queue_callback
from convolve.data import ArrayDataset, DataLoader, DistributedSampler
from convolve.distributed import process_group
from convolve.nn import functional as F
from tests.oracle import assert_close


@pytest.fixture
def group():
    """A single-process group for the test, removed afterwards (the group is process-wide state)."""
    dist.init_process_group(backend="local")
    yield
    dist.destroy_process_group()


# ----- process group and collectives ----------------------------------------------------------------------
def test_import_never_needs_mpi4py():
    code = ("import sys, convolve, convolve.distributed, convolve.train, convolve.cli.commands\n"
            "convolve.distributed.init_process_group()\n"
            "assert convolve.distributed.get_world_size() == 1\n"
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'\n")
    env = {k: v for k, v in __import__("os").environ.items() if k not in process_group.LAUNCHER_VARIABLES}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_group_of_one_without_launcher(monkeypatch):
    for name in process_group.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="get_rank: the default process group is not initialized"):
        dist.get_rank()
    dist.init_process_group()
    try:
        assert (dist.get_rank(), dist.get_world_size(), dist.get_backend()) == (0, 1, "local")
        with pytest.raises(RuntimeError, match="already initialized"):
            dist.init_process_group()
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized()


def test_init_errors(monkeypatch):
    with pytest.raises(ValueError, match=r"`backend` must be one of \('mpi', 'local'\) or None, got 'nccl'"):
        dist.init_process_group("nccl")
    with pytest.raises(ValueError, match=r"`world_size` \(=4\) differs from the launcher's \(1\)"):
        dist.init_process_group("local", world_size=4)
    assert not dist.is_initialized()
    monkeypatch.setenv("PMI_SIZE", "2")
    assert dist.is_mpi_launched()
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    with pytest.raises(ImportError, match=r"pip install convolve\[distributed\]"):
        dist.init_process_group()
    assert not dist.is_available()


def test_collectives_in_a_group_of_one(group):
    t = convolve.tensor([1.0, -2.0, 3.0])
    for op in dist.ReduceOp:
        dist.all_reduce(t, op)
    np.testing.assert_array_equal(t.numpy(), [1.0, -2.0, 3.0])
    a = np.arange(6).reshape(2, 3)
    dist.broadcast(a, src=0)
    outs = [np.zeros((2, 3), np.int64)]
    dist.all_gather(outs, a)
    np.testing.assert_array_equal(outs[0], a)
    objs = [None]
    dist.all_gather_object(objs, {"a": 1})
    assert objs == [{"a": 1}]
    box = ["x"]
    dist.broadcast_object_list(box)
    assert box == ["x"]
    dist.barrier()


def test_collective_errors(group):
    with pytest.raises(TypeError, match="all_reduce: `tensor` must hold numbers"):
        dist.all_reduce(np.array([True]))
    with pytest.raises(TypeError, match="all_reduce: `tensor` must be a convolve Tensor or a NumPy array, got list"):
        dist.all_reduce([1.0])
    with pytest.raises(TypeError, match=r"ReduceOp\.AVG needs floating-point data, got dtype int64"):
        dist.all_reduce(np.array([1]), dist.ReduceOp.AVG)
    with pytest.raises(TypeError, match="`op` must be a ReduceOp"):
        dist.all_reduce(np.array([1.0]), "sum")
    with pytest.raises(ValueError, match=r"broadcast: `src` must be a rank in 0..0, got 1"):
        dist.broadcast(np.array([1.0]), src=1)
    with pytest.raises(ValueError, match=r"`tensor_list` must be a list of world_size \(=1\) tensors, got 2"):
        dist.all_gather([np.zeros(2), np.zeros(2)], np.zeros(2))
    with pytest.raises(ValueError, match=r"`tensor_list\[0\]` must have the shape and dtype of `tensor`"):
        dist.all_gather([np.zeros(3)], np.zeros(2))


# ----- autograd callbacks (what DistributedDataParallel builds on) -------------------------------------------
def test_queue_callback_runs_after_every_leaf_gradient():
    seen = []

    class Probe(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            queue_callback(lambda: seen.append((a.grad is not None, b.grad is not None)))
            return (grad * 2,)

    a, b = convolve.tensor([1.0, 2.0], requires_grad=True), convolve.tensor([3.0, 4.0], requires_grad=True)
    (Probe.apply(a * b).sum() + b.sum()).backward()
    assert seen == [(True, True)]  # queued in the first node, run once both leaves had their gradients
    with pytest.raises(RuntimeError, match="queue_callback: can only be called from a Function's backward"):
        queue_callback(lambda: None)


# ----- DistributedDataParallel in a group of one ---------------------------------------------------------------
def _small_model() -> nn.Module:
    convolve.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2)).double()


def test_ddp_of_one_process_is_the_module(group):
    ref, wrapped = _small_model(), dist.DistributedDataParallel(_small_model())
    assert list(wrapped.state_dict()) == [f"module.{k}" for k in ref.state_dict()]
    opt_a, opt_b = optim.SGD(ref.parameters(), lr=0.1, momentum=0.9), optim.SGD(wrapped.parameters(), lr=0.1,
                                                                                  momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, y = convolve.tensor(rng.standard_normal((5, 1, 4, 4))), convolve.tensor(rng.integers(0, 2, 5))
        for model, opt in ((ref, opt_a), (wrapped, opt_b)):
            opt.zero_grad()
            with wrapped.no_sync():  # nothing to synchronize in a group of one either way
                F.cross_entropy(model(x), y).backward()
            opt.step()
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(wrapped.state_dict()[f"module.{k}"].numpy(), v.numpy())
    with convolve.no_grad():
        np.testing.assert_array_equal(wrapped(x).numpy(), ref(x).numpy())


def test_ddp_errors(group):
    with pytest.raises(TypeError, match=r"`module` must be a convolve\.nn\.Module, got function"):
        dist.DistributedDataParallel(lambda x: x)
    with pytest.raises(ValueError, match="needs a Tensor or array argument whose dim 0 is the batch"):
        dist.DistributedDataParallel(nn.Identity())(3.0)
    dist.destroy_process_group()
    with pytest.raises(RuntimeError, match="DistributedDataParallel: the default process group is not initialized"):
        dist.DistributedDataParallel(nn.Identity())
    dist.init_process_group("local")


# ----- DistributedSampler ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (9, 3, False), (2, 4, False),
                                                    (11, 4, True), (1, 1, False)])
def test_sampler_matches_pytorch_without_shuffle(n, replicas, drop_last):
    data = list(range(n))
    for rank in range(replicas):
        ours = DistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = TorchDistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("n, replicas, drop_last", [(23, 2, False), (23, 4, True), (8, 3, False)])
def test_sampler_shards_are_disjoint_and_cover_the_epoch(n, replicas, drop_last):
    data = list(range(n))
    for epoch in (0, 1):
        shards = []
        for rank in range(replicas):  # each rank builds its own sampler, as in a real job
            s = DistributedSampler(data, replicas, rank, seed=7, drop_last=drop_last)
            s.set_epoch(epoch)
            shards.append(list(s))
        every = [i for shard in shards for i in shard]
        assert len({len(s) for s in shards}) == 1
        if drop_last:
            assert len(set(every)) == len(every) == n - n % replicas
        else:
            assert set(every) == set(range(n)) and len(every) == n + (-n) % replicas
        if epoch == 0:
            first = shards
    assert shards != first  # set_epoch draws a new permutation


def test_sampler_errors_and_group_defaults(group):
    data = list(range(5))
    assert (DistributedSampler(data).num_replicas, DistributedSampler(data).rank) == (1, 0)
    with pytest.raises(ValueError, match=r"`rank` \(=2\) must be in 0..num_replicas-1 \(num_replicas=2\)"):
        DistributedSampler(data, 2, 2)
    with pytest.raises(ValueError, match="`num_replicas` must be >= 1, got 0"):
        DistributedSampler(data, 0, 0)
    with pytest.raises(ValueError, match="`epoch` must be a non-negative int, got -1"):
        DistributedSampler(data).set_epoch(-1)
    dist.destroy_process_group()
    with pytest.raises(RuntimeError, match="`num_replicas` was not given and the process group is not initialized"):
        DistributedSampler(data)
    dist.init_process_group("local")


def test_dataloader_with_sampler():
    ds = ArrayDataset(np.zeros((11, 2, 2), np.uint8), np.arange(11))
    sampler = DistributedSampler(ds, num_replicas=2, rank=1, seed=3)
    loader = DataLoader(ds, batch_size=4, sampler=sampler)
    labels = [y.numpy().tolist() for _, y in loader]
    assert len(loader) == 2 and [i for b in labels for i in b] == list(sampler)
    assert [len(b) for b in labels] == [4, 2]
    with pytest.raises(ValueError, match=r"`sampler` .* excludes `shuffle=True`"):
        DataLoader(ds, batch_size=4, shuffle=True, sampler=sampler)


# ----- SyncBatchNorm ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, momentum", [((6, 3, 4, 5), 0.1), ((5, 2), None), ((4, 3, 7), 0.5)])
def test_sync_batchnorm_of_one_process_equals_torch_batchnorm(group, dtype, shape, momentum):
    rng = np.random.default_rng(0)
    x, g = (rng.standard_normal(shape) * 2 + 1).astype(dtype), rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    ours = nn.SyncBatchNorm(c, momentum=momentum, dtype=dtype)
    theirs = torch.nn.BatchNorm1d(c, momentum=momentum, dtype=torch.float64 if dtype == np.float64 else torch.float32)
    for _ in range(2):
        xo, xt = convolve.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ours.weight.grad = None
        theirs.weight.grad = None
        yo = ours(xo)
        yt = theirs(xt.reshape(shape[0], c, -1)).reshape(shape)
        yo.backward(convolve.tensor(g))
        yt.backward(torch.tensor(g))
        assert_close(yo.numpy(), yt.detach().numpy(), dtype, "output")
        assert_close(xo.grad.numpy(), xt.grad.numpy(), dtype, "input gradient")
        assert_close(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), dtype, "weight gradient")
        assert_close(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), dtype, "bias gradient")
    assert_close(ours.running_mean.numpy(), theirs.running_mean.numpy(), dtype, "running_mean")
    assert_close(ours.running_var.numpy(), theirs.running_var.numpy(), dtype, "running_var")
    assert int(ours.num_batches_tracked.numpy()) == 2
    ours.eval()
    theirs.eval()
    assert_close(ours(convolve.tensor(x)).numpy(), theirs(torch.tensor(x).reshape(shape[0], c, -1)).detach()
                 .reshape(shape).numpy(), dtype, "eval output")


def test_sync_batchnorm_without_group_is_batchnorm():
    x = convolve.tensor(np.random.default_rng(1).standard_normal((4, 3, 2, 2)))
    np.testing.assert_array_equal(nn.SyncBatchNorm(3, dtype=np.float64)(x).numpy(),
                                  nn.BatchNorm2d(3, dtype=np.float64)(x).numpy())
    with pytest.raises(ValueError, match=r"SyncBatchNorm: expected 2-D or 3-D or 4-D or 5-D input \(N, C, \*\)"):
        nn.SyncBatchNorm(3)(convolve.zeros(3))


def test_sync_batchnorm_needs_two_values_per_channel(group):
    with pytest.raises(ValueError, match="expected more than 1 value per channel over all ranks when training, got 1"):
        nn.SyncBatchNorm(3)(convolve.zeros((1, 3)))


def test_convert_sync_batchnorm_shares_parameters_and_buffers():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, momentum=None),
                          nn.Sequential(nn.Flatten(), nn.BatchNorm1d(8, affine=False)))
    model.eval()
    before = dict(model.state_dict(keep_vars=True))
    params = list(model.parameters())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    assert isinstance(model[1], nn.SyncBatchNorm) and isinstance(model[2][1], nn.SyncBatchNorm)
    assert model[1].momentum is None and model[2][1].weight is None and not model[1].training
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert all(model.state_dict(keep_vars=True)[k] is v for k, v in before.items())
    root = nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm2d(4))
    assert isinstance(root, nn.SyncBatchNorm) and root.num_features == 4


def test_fit_sets_the_sampler_epoch(tmp_path):
    from convolve.train import Trainer

    ds = ArrayDataset(np.random.default_rng(0).integers(0, 255, (12, 4, 4), dtype=np.uint8), np.arange(12) % 2)
    sampler = DistributedSampler(ds, num_replicas=2, rank=1, seed=4)
    seen = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    trainer = Trainer(model, None, optim.SGD(model.parameters(), lr=0.1), progress=False,
                      callbacks=[lambda t, e, r: seen.append(sampler.epoch)], checkpoint_dir=tmp_path)
    trainer.fit(DataLoader(ds, batch_size=3, sampler=sampler), epochs=3)
    assert seen == [0, 1, 2]  # the permutation of epoch k is drawn in epoch k, so a resumed run draws the same


def test_ddp_keeps_the_structure_of_the_output(group):
    from typing import NamedTuple

    class Outputs(NamedTuple):
        logits: convolve.Tensor
        aux: convolve.Tensor | None

    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            y = self.fc(x)
            return Outputs(y, None), [y * 2, {"z": y}]

    (named, rest) = dist.DistributedDataParallel(TwoHeads())(convolve.randn(4, 3))
    assert type(named) is Outputs and named.aux is None and isinstance(rest, list) and set(rest[1]) == {"z"}
    (named.logits.sum() + rest[0].sum() + rest[1]["z"].sum()).backward()
