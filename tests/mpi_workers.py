"""Programs that tests/test_distributed_mpi.py runs under `mpiexec -n 2 python -m mpi4py tests/mpi_workers.py NAME`.

Each rank computes the single-process reference itself (the whole global batch, plain BatchNorm2d), runs the
data-parallel version on its slice, and raises on any mismatch (python -m mpi4py then aborts the job with a
non-zero exit). Rank 0 prints "ok NAME ..." at the end.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import convolve
import convolve.distributed as dist
from convolve import nn, optim
from convolve.data import ArrayDataset, DataLoader, DistributedSampler
from convolve.nn import functional as F


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _check_close(name: str, got: np.ndarray, want: np.ndarray, rtol: float) -> None:
    if got.shape != want.shape or _rel(got, want) > rtol:
        err = _rel(got, want) if got.shape == want.shape else "shape"
        raise AssertionError(f"rank {dist.get_rank()}: {name}: relative error {err} > {rtol}")


def _check_same_on_all_ranks(state: dict[str, np.ndarray]) -> None:
    """Bitwise equality of every array across ranks."""
    every: list = [None] * dist.get_world_size()
    dist.all_gather_object(every, {k: v.tobytes() for k, v in state.items()})
    for rank, theirs in enumerate(every):
        diff = [k for k in state if theirs[k] != every[0][k]]
        if diff:
            raise AssertionError(f"rank {rank} differs from rank 0 (bitwise) in {diff}")


def _model(dtype: str) -> nn.Module:
    convolve.manual_seed(0)  # no conv bias before BN: its gradient is zero up to rounding, which Adam would amplify
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).to(dtype)


def _global_batches(rng: np.random.Generator) -> list[np.ndarray]:
    """Index sets of the global batches: 20 of 8, one micro-batch pair for no_sync, then an uneven 5."""
    return [rng.choice(64, size=8, replace=False) for _ in range(22)] + [rng.choice(64, size=5, replace=False)]


def ddp() -> str:
    """DDP + SyncBatchNorm on 2 ranks == one process on the same global batches (SGD-momentum and AdamW)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(1)
    x_all, y_all = rng.standard_normal((64, 1, 8, 8)), rng.integers(0, 3, 64)
    batches = _global_batches(rng)
    for make_opt in (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
                     lambda p: optim.AdamW(p, lr=1e-2, weight_decay=1e-2)):
        ref = _model("float64")
        par = dist.DistributedDataParallel(nn.SyncBatchNorm.convert_sync_batchnorm(_model("float64")))
        ref_opt, par_opt = make_opt(ref.parameters()), make_opt(par.parameters())

        def step(model, opt, index_sets, local):
            opt.zero_grad()
            for i, idx in enumerate(index_sets):
                if local:
                    idx = np.array_split(idx, world)[rank]  # rank r's slice; 5 -> 3 + 2
                x, y = convolve.tensor(x_all[idx]), convolve.tensor(y_all[idx])
                last = i == len(index_sets) - 1
                if local and not last:
                    with model.no_sync():
                        F.cross_entropy(model(x), y).backward()
                else:
                    F.cross_entropy(model(x), y).backward()
            opt.step()

        plan = [[b] for b in batches[:20]] + [batches[20:22], [batches[22]]]
        for index_sets in plan:
            step(ref, ref_opt, index_sets, local=False)
            step(par, par_opt, index_sets, local=True)
        want = {k: v.data for k, v in ref.state_dict().items()}
        got = {k.removeprefix("module."): v.data for k, v in par.state_dict().items()}
        for k in want:
            if want[k].dtype.kind == "f":
                _check_close(k, got[k], want[k], 1e-12)
            elif not np.array_equal(got[k], want[k]):
                raise AssertionError(f"{k}: {got[k]} != {want[k]}")
        _check_same_on_all_ranks(got)
    return f"{len(plan)} steps x 2 optimizers"


def syncbn() -> str:
    """SyncBatchNorm on the ranks' slices == BatchNorm2d on the whole batch: output, every gradient, running stats."""
    rank = dist.get_rank()
    for dtype, rtol in (("float64", 1e-12), ("float32", 1e-4)):
        rng = np.random.default_rng(2)
        x_all = (rng.standard_normal((7, 3, 5, 4)) * 3 + 1).astype(dtype)
        g_all = rng.standard_normal((7, 3, 5, 4)).astype(dtype)
        w, b = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
        lo, hi = [0, 4, 7][rank], [0, 4, 7][rank + 1]  # uneven: 4 + 3 samples
        results = []
        for layer_cls, x_np, g_np in ((nn.BatchNorm2d, x_all, g_all), (nn.SyncBatchNorm, x_all[lo:hi], g_all[lo:hi])):
            layer = layer_cls(3, momentum=0.3, dtype=dtype)
            layer.weight.data[...], layer.bias.data[...] = w, b
            for _ in range(2):  # two steps: the running statistics accumulate
                x = convolve.tensor(x_np, requires_grad=True)
                layer.weight.grad = layer.bias.grad = None
                out = layer(x)
                out.backward(g_np)
            grads = [layer.weight.grad.data.copy(), layer.bias.grad.data.copy()]
            if layer_cls is nn.SyncBatchNorm:
                for g in grads:
                    dist.all_reduce(g)  # parameter gradients are local sums; DDP adds them
            layer.eval()
            results.append([out.data, x.grad.data, *grads, layer.running_mean.data, layer.running_var.data,
                            layer(convolve.tensor(x_np)).data])
        names = ["output", "input grad", "weight grad", "bias grad", "running_mean", "running_var", "eval output"]
        for name, whole, part in zip(names, *results):
            want = whole[lo:hi] if name in ("output", "input grad", "eval output") else whole
            _check_close(f"{dtype} {name}", part, want, rtol)
    return "float64 and float32"


def sampler() -> str:
    """DataLoader + DistributedSampler: every rank's batches are a disjoint shard; together they cover the data."""
    world = dist.get_world_size()
    n = 23
    ds = ArrayDataset(np.zeros((n, 2, 2), np.uint8), np.arange(n))
    for shuffle, drop_last in ((True, False), (False, True), (True, True)):
        s = DistributedSampler(ds, shuffle=shuffle, seed=5, drop_last=drop_last)
        for epoch in (0, 1):
            s.set_epoch(epoch)
            seen = np.concatenate([y.numpy() for _, y in DataLoader(ds, batch_size=4, sampler=s)])
            every: list = [None] * world
            dist.all_gather_object(every, seen.tolist())
            flat = sorted(i for shard in every for i in shard)
            if drop_last:
                ok = len(set(flat)) == len(flat) == n - n % world
            else:
                ok = set(flat) == set(range(n)) and len(flat) == n + (-n) % world
            if not ok or any(len(e) != len(every[0]) for e in every):
                raise AssertionError(f"shuffle={shuffle} drop_last={drop_last} epoch {epoch}: shards {every}")
    return "disjoint and complete"


def collectives() -> str:
    """all_reduce (every op, Tensor and strided array), broadcast from rank 1, all_gather, object collectives."""
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = np.array([rank + 1.0, -rank, 2.0 ** rank])
    want = {"SUM": [3.0, -1.0, 3.0], "PRODUCT": [2.0, 0.0, 2.0], "MIN": [1.0, -1.0, 1.0], "MAX": [2.0, 0.0, 2.0],
            "AVG": [1.5, -0.5, 1.5]}
    for op in dist.ReduceOp:
        t = convolve.tensor(mine.copy())
        dist.all_reduce(t, op)
        if not np.array_equal(t.numpy(), want[op.name]):
            raise AssertionError(f"all_reduce {op.name}: {t.numpy()} != {want[op.name]}")
    grid = np.arange(12.0).reshape(3, 4) * (rank + 1)
    dist.all_reduce(grid[:, ::2])  # a strided view: reduced through a contiguous copy, written back
    if not np.array_equal(grid[:, ::2], np.arange(12.0).reshape(3, 4)[:, ::2] * 3):
        raise AssertionError(f"strided all_reduce: {grid}")
    b = np.full(3, float(rank))
    dist.broadcast(b, src=1)
    gathered = [np.zeros(2, np.int64) for _ in range(world)]
    dist.all_gather(gathered, np.array([rank, 10 * rank]))
    box = [{"rank": rank}]
    dist.broadcast_object_list(box, src=1)
    if not (np.array_equal(b, [1.0] * 3) and [g.tolist() for g in gathered] == [[0, 0], [1, 10]]
            and box == [{"rank": 1}]):
        raise AssertionError(f"broadcast {b}, all_gather {gathered}, broadcast_object_list {box}")
    unused_parameters()
    return "all ops; parameters without a gradient on some or all ranks"


def unused_parameters() -> None:
    """Rank 1 alone uses head b, no rank uses head c: b's gradient reaches rank 0, c's stays None everywhere."""
    convolve.manual_seed(0)
    heads = nn.ModuleDict({"a": nn.Linear(3, 2), "b": nn.Linear(3, 2), "c": nn.Linear(3, 2)}).double()

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = heads

        def forward(self, x):
            y = self.heads["a"](x)
            return y + self.heads["b"](x) if dist.get_rank() == 1 else y

    model = dist.DistributedDataParallel(Net())
    model(convolve.tensor(np.ones((2, 3)))).sum().backward()
    grads = {k: None if v.grad is None else v.grad.numpy() for k, v in model.named_parameters()}
    if any(grads[k] is not None for k in grads if ".c." in k) or any(grads[k] is None for k in grads if ".c." not in k):
        raise AssertionError(f"gradients present: { {k: v is not None for k, v in grads.items()} }")
    _check_same_on_all_ranks({k: v for k, v in grads.items() if v is not None})


def mismatch() -> str:
    """Rank 1 wraps a different model: DistributedDataParallel refuses on every rank."""
    dist.DistributedDataParallel(nn.Linear(4, 2 + dist.get_rank()))
    return "should not get here"


def fail() -> str:
    """Rank 1 raises in the middle of an epoch while rank 0 waits in a collective."""
    model = dist.DistributedDataParallel(nn.Linear(4, 2))
    for i in range(10):
        if dist.get_rank() == 1 and i == 3:
            print(f"failing at {time.time()}", file=sys.stderr, flush=True)  # the test times the job's end from here
            raise RuntimeError("rank 1 fails on purpose at step 3")
        model(convolve.randn(2, 4)).sum().backward()
        time.sleep(0.01)
    return "should not get here"


def main() -> None:
    dist.init_process_group()
    name = sys.argv[1]
    workers = {"ddp": ddp, "syncbn": syncbn, "sampler": sampler, "collectives": collectives, "mismatch": mismatch,
               "fail": fail}
    note = workers[name]()
    dist.barrier()
    if dist.get_rank() == 0:
        print(f"ok {name} world_size={dist.get_world_size()}: {note}", flush=True)


if __name__ == "__main__":
    main()
