"""Training-step benchmark: time, CPU time and peak memory of a full step, convolve vs PyTorch (NCHW and
channels_last), at each thread count, then the 1 -> N thread scaling of both.

    python benchmarks/bench_train.py --threads 1 2          # all networks
    python benchmarks/bench_train.py --threads 1 --steps 10 --only lenet5
    python benchmarks/bench_train.py --engine numpy          # convolve without its compiled (Numba) kernels

A step is forward, cross-entropy, backward and an SGD-momentum update on a fixed random batch of 128.
Each (framework, network) runs in its own subprocess so that peak RSS (ru_maxrss) is its own and the two
thread pools never compete. The PyTorch networks (torch_twins.py) are written to be layer-for-layer the zoo
models: the convolve worker loads the twin's initial state_dict (saved by the parent to an .npz, so that the
worker never imports PyTorch) into the convolve model, which fails loudly if they differ.
The first (warm-up) step is never timed: it is where convolve's Numba kernels are loaded or compiled
(`first ms` reports it; compiled code is cached on disk, so only a first run ever compiles).
Each round runs every framework at every thread count of one network back to back, so that the 1 -> N scaling
compares workers run within a few minutes of each other (the machine's speed drifts over minutes).
The ratio is convolve / PyTorch's better layout (NCHW or channels_last) in the same run: the median convolve step
over the better layout's. `rounds` gives the spread: the lowest and highest ratio of one round's convolve worker to
the same round's PyTorch worker (run seconds apart). On a shared VM one worker can run 20-30% slower than the next
(measured: six back-to-back ResNet-20 pairs at 2 threads gave ratios of 0.91 to 1.32), so a ratio well inside the
spread of another run is no evidence of a change; more `--rounds` narrow it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

NETWORKS = {"lenet5": (1, 32, 32), "vgg_small": (3, 32, 32), "resnet20": (3, 32, 32)}


def torch_network(name: str):
    """The PyTorch twin of the convolve zoo model `name` (same layers, same state_dict keys)."""
    from torch_twins import build  # benchmarks/torch_twins.py, beside this script

    return build(name)


def twin_weights(name: str, path: str) -> None:
    """Save the initial state_dict of the PyTorch twin of `name` to `path` (.npz), for the convolve worker."""
    import torch

    torch.manual_seed(0)
    np.savez(path, **{k: v.detach().numpy() for k, v in torch_network(name).state_dict().items()})


def run_worker(framework: str, name: str, steps: int, threads: int, batch: int, engine: str = "fast",
               weights: str | None = None) -> dict:
    """Time `steps` training steps of `name` in `framework`; return timings and peak RSS.

    The convolve worker reads the twin's initial weights from `weights` (.npz) and never imports PyTorch, so its
    peak memory is convolve's own (PyTorch's libraries alone take ~190 MB); without `weights` it builds the twin.
    """
    from threadpoolctl import threadpool_limits

    if framework != "cv" or weights is None:
        import torch

        torch.set_num_threads(threads)
        torch.manual_seed(0)
        reference = torch_network(name)
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((batch, *NETWORKS[name])).astype(np.float32)
    y_np = rng.integers(0, 10, batch)
    if framework in ("torch", "torch_cl"):
        model, x, y = reference, torch.tensor(x_np), torch.tensor(y_np)
        if framework == "torch_cl":
            model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.functional.cross_entropy
        engine_ctx: contextlib.AbstractContextManager = contextlib.nullcontext()
    else:
        import convolve as cv
        from convolve.models import get_model
        from convolve.optim import SGD

        model = get_model(name, num_classes=10)
        if weights is None:
            model.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
            del reference
        else:
            with np.load(weights) as state:
                model.load_state_dict({k: state[k] for k in state.files})
        x, y = cv.tensor(x_np), cv.tensor(y_np)
        opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = cv.nn.functional.cross_entropy
        engine_ctx = cv.use_engine(engine)

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    times, cpu = [], []
    with threadpool_limits(limits=threads), engine_ctx:
        t_first = time.perf_counter()
        step()  # warm-up: loads (or, on a first run, compiles) the Numba kernels
        first_s = time.perf_counter() - t_first
        for _ in range(steps):
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"median_s": statistics.median(times), "cpu_s": statistics.median(cpu), "rss_mb": rss_mb,
            "first_s": first_s}


FRAMEWORKS = ("cv", "torch", "torch_cl")


def measure(name: str, thread_counts: list[int], args: argparse.Namespace) -> dict[int, dict[str, dict[str, float]]]:
    """Per thread count, the median over `args.rounds` rounds of each framework's worker results; under "rounds",
    each round's convolve step time over that round's PyTorch step time, per layout. A round runs every framework at
    every thread count back to back, so that the 1 -> N scaling of both compares times taken minutes apart at most,
    not one thread count's whole run against the next (the machine's speed drifts over minutes)."""
    runs: dict[tuple[int, str], list[dict]] = {(t, fw): [] for t in thread_counts for fw in FRAMEWORKS}
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "twin.npz")
        twin_weights(name, weights)
        for _ in range(args.rounds):  # alternate the frameworks so that load bursts hit all of them
            for threads, fw in runs:
                cmd = [sys.executable, __file__, "--worker", fw, name, "--steps", str(args.steps),
                       "--threads", str(threads), "--batch", str(args.batch), "--engine", args.engine,
                       "--weights", weights]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                runs[threads, fw].append(json.loads(out.strip().splitlines()[-1]))
    results = {}
    for t in thread_counts:
        result = {fw: {key: statistics.median(run[key] for run in runs[t, fw]) for key in runs[t, fw][0]}
                  for fw in FRAMEWORKS}
        result["rounds"] = {fw: [cv["median_s"] / th["median_s"] for cv, th in zip(runs[t, "cv"], runs[t, fw])]
                            for fw in FRAMEWORKS[1:]}
        results[t] = result
    return results


def report_row(name: str, threads: int, batch: int, r: dict[str, dict[str, float]]) -> str:
    """One table row: times, ratio to the better PyTorch layout, CPU times, peak memory, convolve's first step."""
    best = min(("torch", "torch_cl"), key=lambda fw: r[fw]["median_s"])
    cv_s, th_s = r["cv"]["median_s"], r[best]["median_s"]
    spread = r["rounds"][best]
    return (f"{name:10s} {threads:3d} {cv_s * 1e3:8.1f} {r['torch']['median_s'] * 1e3:8.1f} "
            f"{r['torch_cl']['median_s'] * 1e3:8.1f} {cv_s / th_s:6.2f} {min(spread):5.2f}-{max(spread):4.2f} "
            f"{batch / cv_s:8.0f} "
            f"{r['cv']['cpu_s'] * 1e3:9.1f} {r[best]['cpu_s'] * 1e3:9.1f} {r['cv']['rss_mb']:6.0f} "
            f"{r[best]['rss_mb']:6.0f} {r['cv']['rss_mb'] / r[best]['rss_mb']:6.2f} {r['cv']['first_s'] * 1e3:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--only", default="")
    parser.add_argument("--rounds", type=int, default=2, help="alternating subprocess rounds (median)")
    parser.add_argument("--engine", choices=("fast", "numpy", "reference"), default="fast",
                        help="convolve's engine: 'fast' (default), 'numpy' (no compiled kernels), 'reference'")
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "NETWORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker[0], args.worker[1], args.steps, args.threads[0], args.batch,
                                    args.engine, args.weights)))
        return
    header = (f"{'network':10s} {'thr':>3s} {'cv ms':>8s} {'th ms':>8s} {'th-cl ms':>8s} {'ratio':>6s} "
              f"{'rounds':>10s} "
              f"{'cv img/s':>8s} {'cv cpu':>9s} {'th cpu':>9s} {'cv MB':>6s} {'th MB':>6s} {'mem':>6s} "
              f"{'first ms':>8s}")
    print(f"engine: {args.engine}; ratio = convolve / the better PyTorch layout; rounds = lowest-highest ratio of "
          f"one round's workers; th cpu, th MB of that layout")
    print(header)
    print("-" * len(header))
    results: dict[tuple[str, int], dict[str, dict[str, float]]] = {}
    for name in NETWORKS:
        if args.only and args.only not in name:
            continue
        for threads, result in measure(name, args.threads, args).items():
            results[name, threads] = result
            print(report_row(name, threads, args.batch, result), flush=True)
    if len(args.threads) > 1:
        low, high = min(args.threads), max(args.threads)
        print(f"\nscaling {low} -> {high} threads (time at {low} / time at {high}):")
        for name in NETWORKS:
            if (name, low) in results and (name, high) in results:
                a, b = results[name, low], results[name, high]
                speed = {fw: a[fw]["median_s"] / b[fw]["median_s"] for fw in FRAMEWORKS}
                print(f"{name:10s} convolve {speed['cv']:5.2f}  torch {speed['torch']:5.2f}  "
                      f"torch channels_last {speed['torch_cl']:5.2f}")


if __name__ == "__main__":
    main()
