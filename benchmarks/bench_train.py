"""Training-step benchmark: images/second and peak memory of a full step, convolve vs PyTorch.

    python benchmarks/bench_train.py                       # all networks, 2 threads
    python benchmarks/bench_train.py --threads 1 --steps 10 --only lenet5

A step is forward, cross-entropy, backward and an SGD-momentum update on a fixed random batch of 128.
Each (framework, network) runs in its own subprocess so that peak RSS (ru_maxrss) is its own and the two
thread pools never compete. The PyTorch networks below are written to be layer-for-layer the zoo models:
the worker loads PyTorch's initial state_dict into the convolve model, which fails loudly if they differ.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

NETWORKS = {"lenet5": (1, 32, 32), "vgg_small": (3, 32, 32), "resnet20": (3, 32, 32)}


def torch_network(name: str):
    """The PyTorch twin of the convolve zoo model `name` (same layers, same state_dict keys)."""
    from torch_twins import build  # benchmarks/torch_twins.py, beside this script

    return build(name)


def run_worker(framework: str, name: str, steps: int, threads: int, batch: int) -> dict:
    """Time `steps` training steps of `name` in `framework`; return timings and peak RSS."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    reference = torch_network(name)
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((batch, *NETWORKS[name])).astype(np.float32)
    y_np = rng.integers(0, 10, batch)
    if framework == "torch":
        model, x, y = reference, torch.tensor(x_np), torch.tensor(y_np)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.functional.cross_entropy
    else:
        import convolve as cv
        from convolve.models import get_model
        from convolve.optim import SGD

        model = get_model(name, num_classes=10)
        model.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
        del reference
        x, y = cv.tensor(x_np), cv.tensor(y_np)
        opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = cv.nn.functional.cross_entropy

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    times, cpu = [], []
    with threadpool_limits(limits=threads):
        step()  # warm-up
        for _ in range(steps):
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"median_s": statistics.median(times), "cpu_s": statistics.median(cpu), "rss_mb": rss_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--only", default="")
    parser.add_argument("--rounds", type=int, default=2, help="alternating cv/torch subprocess rounds (median)")
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "NETWORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker[0], args.worker[1], args.steps, args.threads[0], args.batch)))
        return
    header = (f"{'network':10s} {'thr':>3s} {'cv ms':>8s} {'torch ms':>8s} {'ratio':>6s} {'cv img/s':>9s} "
              f"{'torch img/s':>11s} {'cv cpu ms':>9s} {'torch cpu':>9s} {'cpu ratio':>9s} {'cv MB':>7s} "
              f"{'torch MB':>8s} {'mem ratio':>9s}")
    print(header)
    print("-" * len(header))
    for threads in args.threads:
        for name in NETWORKS:
            if args.only and args.only not in name:
                continue
            runs: dict[str, list[dict]] = {"cv": [], "torch": []}
            for _ in range(args.rounds):  # alternate the frameworks so that load bursts hit both
                for fw in ("cv", "torch"):
                    cmd = [sys.executable, __file__, "--worker", fw, name, "--steps", str(args.steps),
                           "--threads", str(threads), "--batch", str(args.batch)]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    runs[fw].append(json.loads(out.strip().splitlines()[-1]))
            r = {fw: {key: statistics.median(run[key] for run in runs[fw]) for key in runs[fw][0]} for fw in runs}
            cv_s, th_s = r["cv"]["median_s"], r["torch"]["median_s"]
            print(f"{name:10s} {threads:3d} {cv_s * 1e3:8.1f} {th_s * 1e3:8.1f} {cv_s / th_s:6.2f} "
                  f"{args.batch / cv_s:9.0f} {args.batch / th_s:11.0f} {r['cv']['cpu_s'] * 1e3:9.1f} "
                  f"{r['torch']['cpu_s'] * 1e3:9.1f} {r['cv']['cpu_s'] / r['torch']['cpu_s']:9.2f} "
                  f"{r['cv']['rss_mb']:7.0f} {r['torch']['rss_mb']:8.0f} "
                  f"{r['cv']['rss_mb'] / r['torch']['rss_mb']:9.2f}", flush=True)


if __name__ == "__main__":
    main()
