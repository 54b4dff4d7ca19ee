"""Data-parallel training benchmark: images/s on 1 process vs 2 MPI ranks, the allreduce's cost, a cost model.

    python benchmarks/bench_distributed.py            # LeNet-5 and ResNet-20, global batch 128 (a few minutes)
    python benchmarks/bench_distributed.py --quick    # tiny settings: only checks that everything runs

Training: a step is forward, cross-entropy, backward (with DistributedDataParallel's gradient all-reduce) and an
SGD-momentum update on a fixed random float32 global batch, timed as the median of `--steps` steps, in three
set-ups: 1 process on 1 thread, 1 process on 2 threads, 2 ranks (`mpiexec -n 2`) on 1 thread each, each rank
half the global batch. Per step, the 2-rank run also reports the time its ranks wait for each other (a barrier
before the all-reduce) and the all-reduce itself. Allreduce: the median time of MPI Allreduce of float32 buffers
of 4 B to 64 MB between 2 ranks, and the latency a and bandwidth b of t(S) = 2 a + S / b (a 2-rank ring makes
2 steps) fitted to all sizes.

Cost model (printed last): a ring all-reduce of S bytes over p machines takes T(p) = 2(p-1) a + 2(p-1)/p S / b;
a step with per-rank batch n takes n t + T(p) (t = compute per image on one thread, measured; the gradient
all-reduce starts after backward, no overlap), so the scaling efficiency is n t / (n t + T(p)). For the network,
b = min(measured bandwidth, --network-gbps) and a = measured latency + --network-latency-us (both stated
assumptions about the network, the rest measured here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NETWORKS = {"lenet5": (1, 32, 32), "resnet20": (3, 32, 32)}
SETUPS = (("1 process, 1 thread", 1, 1), ("1 process, 2 threads", 1, 2), ("2 ranks, 1 thread each", 2, 1))
MACHINES = (4, 16, 64)
TARGET_EFFICIENCY = 0.9


def _mpiexec() -> str:
    beside_python = Path(sys.executable).parent / "mpiexec"
    return str(beside_python) if beside_python.is_file() else "mpiexec"


def train_worker(name: str, batch: int, steps: int) -> dict | None:
    """Time training steps of zoo model `name` on this rank's share of a global `batch` (rank 0 returns)."""
    import convolve as cv
    import convolve.distributed as dist
    from convolve.models import get_model

    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    comm_times, wait_times = [], []

    class TimedDDP(dist.DistributedDataParallel):
        def _reduce_gradients(self) -> None:
            t0 = time.perf_counter()
            dist.barrier()  # time the ranks wait for each other apart from the all-reduce itself
            t1 = time.perf_counter()
            super()._reduce_gradients()
            wait_times.append(t1 - t0)
            comm_times.append(time.perf_counter() - t1)

    cv.manual_seed(0)
    model = TimedDDP(get_model(name, num_classes=10))
    rng = np.random.default_rng(rank)
    x = cv.tensor(rng.standard_normal((batch // world, *NETWORKS[name])).astype(np.float32))
    y = cv.tensor(rng.integers(0, 10, batch // world))
    opt = cv.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(steps + 1):  # the first step warms up
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        cv.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    grad_bytes = sum(p.data.nbytes for p in model.parameters())
    mine = {"step_s": statistics.median(times), "wait_s": statistics.median(wait_times[1:]) if world > 1 else 0.0,
            "allreduce_s": statistics.median(comm_times[1:]) if world > 1 else 0.0}
    every: list = [None] * world
    dist.all_gather_object(every, mine)
    if rank:
        return None
    return {"world": world, "threads": cv.get_num_threads(), "grad_bytes": grad_bytes,
            **{k: max(r[k] for r in every) for k in mine}}


def allreduce_worker(sizes: list[int], repeats: int) -> dict | None:
    """Median Allreduce time of float32 buffers of each size in bytes (rank 0 returns {size: seconds})."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    for _ in range(10):  # the first calls set up the connection
        comm.Allreduce(MPI.IN_PLACE, np.ones(1024, np.float32), op=MPI.SUM)
    result = {}
    for size in sizes:
        buffer = np.ones(max(size // 4, 1), np.float32)
        times = []
        for _ in range(repeats + 1):
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            times.append(time.perf_counter() - t0)
        result[str(buffer.nbytes)] = statistics.median(times[1:])
    return result if comm.Get_rank() == 0 else None


def _launch(args: list[str], ranks: int, threads: int) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    mpi = [_mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py"] if ranks > 1 else [sys.executable]
    out = subprocess.run([*mpi, __file__, *args], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def _ring_time(p: int, size: float, latency: float, bandwidth: float) -> float:
    return 2 * (p - 1) * latency + 2 * (p - 1) / p * size / bandwidth


def _print_training(results: dict[str, list[dict]], batch: int) -> None:
    print(f"Training step, global batch {batch}, float32, median of the steps")
    print(f"{'network':9s} {'set-up':24s} {'ms/step':>8s} {'img/s':>7s} {'speed-up':>8s} {'wait ms':>8s} "
          f"{'allreduce ms':>12s} {'grad MB':>8s}")
    for name, rows in results.items():
        for (label, _, _), r in zip(SETUPS, rows):
            print(f"{name:9s} {label:24s} {r['step_s'] * 1e3:8.1f} {batch / r['step_s']:7.0f} "
                  f"{rows[0]['step_s'] / r['step_s']:8.2f} {r['wait_s'] * 1e3:8.2f} {r['allreduce_s'] * 1e3:12.2f} "
                  f"{r['grad_bytes'] / 1e6:8.2f}")


def _fit_allreduce(times: dict) -> tuple[float, float]:
    """(latency per ring step in s, bandwidth in bytes/s) of a 2-rank Allreduce: t(S) = 2 a + S / b fitted to
    every size by least squares on the relative error (so that small and large sizes count alike)."""
    sizes = np.array([int(s) for s in times], dtype=np.float64)
    t = np.array(list(times.values()))
    (c0, c1), *_ = np.linalg.lstsq(np.stack([1 / t, sizes / t], axis=1), np.ones_like(t), rcond=None)
    return max(c0, t.min()) / 2 if c0 <= 0 else c0 / 2, 1 / max(c1, 1e-18)


def _print_cost_model(results: dict[str, list[dict]], batch: int, latency: float, bandwidth: float,
                      args: argparse.Namespace) -> None:
    net_latency = latency + args.network_latency_us * 1e-6
    net_bandwidth = min(bandwidth, args.network_gbps * 1e9 / 8)
    print(f"\nCost model on a {args.network_gbps:g} Gbit/s network: ring all-reduce latency {net_latency * 1e6:.1f} us "
          f"per step (measured {latency * 1e6:.1f} + assumed {args.network_latency_us:g}), bandwidth "
          f"{net_bandwidth / 1e9:.2f} GB/s; one rank per machine at this machine's 1-thread speed")
    n_rank = batch // 2
    print(f"{'network':9s} {'compute/img ms':>14s} {'grad MB':>8s} {'machines':>8s} {'allreduce ms':>12s} "
          f"{f'eff. @{n_rank}/rank':>13s} {f'batch/rank for {TARGET_EFFICIENCY:.0%}':>18s} {'global batch':>12s}")
    for name, rows in results.items():
        per_image = rows[0]["step_s"] / batch  # 1 process, 1 thread: no communication
        size = rows[0]["grad_bytes"]
        check = _ring_time(2, size, latency, bandwidth)
        for p in MACHINES:
            t_ar = _ring_time(p, size, net_latency, net_bandwidth)
            eff = n_rank * per_image / (n_rank * per_image + t_ar)
            need = int(np.ceil(TARGET_EFFICIENCY / (1 - TARGET_EFFICIENCY) * t_ar / per_image))
            print(f"{name:9s} {per_image * 1e3:14.3f} {size / 1e6:8.2f} {p:8d} {t_ar * 1e3:12.2f} {eff:13.1%} "
                  f"{need:18d} {need * p:12d}")
        print(f"{'':9s} (check: the model gives {check * 1e3:.2f} ms for this machine's 2 ranks; measured "
              f"{rows[2]['allreduce_s'] * 1e3:.2f} ms in training)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128, help="global batch (default 128)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--only", default="", help="only networks whose name contains this")
    parser.add_argument("--quick", action="store_true", help="batch 4, 1 step, small buffers: a smoke run")
    parser.add_argument("--network-gbps", type=float, default=10.0, help="network bandwidth for the cost model")
    parser.add_argument("--network-latency-us", type=float, default=25.0,
                        help="network latency added per ring step in the cost model (assumed, default 25 us)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.batch, args.steps = 4, 1
    sizes = [4 * 16**k for k in range(5 if args.quick else 7)]  # 4 B ... 64 MB
    if args.worker:
        kind, *rest = args.worker
        out = train_worker(rest[0], args.batch, args.steps) if kind == "train" else allreduce_worker(
            sizes, 2 if args.quick else 20)
        if out is not None:
            print(json.dumps(out), flush=True)
        return
    results: dict[str, list[dict]] = {}
    for name in NETWORKS:
        if args.only and args.only not in name:
            continue
        results[name] = [_launch(["--worker", "train", name, "--batch", str(args.batch), "--steps", str(args.steps)],
                                 ranks, threads) for _, ranks, threads in SETUPS]
    _print_training(results, args.batch)
    times = _launch(["--worker", "allreduce", *(["--quick"] if args.quick else [])], 2, 1)
    print("\nMPI Allreduce between 2 ranks (float32, median)")
    print(f"{'bytes':>10s} {'ms':>9s} {'GB/s':>7s}")
    for size, t in times.items():
        print(f"{int(size):10d} {t * 1e3:9.3f} {int(size) / t / 1e9:7.2f}")
    latency, bandwidth = _fit_allreduce(times)
    print(f"latency {latency * 1e6:.1f} us per ring step, bandwidth {bandwidth / 1e9:.2f} GB/s")
    _print_cost_model(results, args.batch, latency, bandwidth, args)


if __name__ == "__main__":
    main()
