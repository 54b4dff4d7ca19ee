"""Where a convolve training step spends its time: cProfile self time grouped by source file, and how much of
the step runs on the calling thread alone (the serial part that more cores cannot shorten).

    python benchmarks/profile_step.py resnet20 [--threads 1] [--steps 3]
    python benchmarks/profile_step.py resnet20 --serial --threads 2
    python benchmarks/profile_step.py resnet20 --scaling --threads 2 --steps 10

A step is forward, cross-entropy, backward and SGD-momentum on a fixed random batch of 128 (as bench_train.py).
NumPy's C functions (GEMMs, copies, ufuncs) count as self time of the Python function that calls them, so the
file of an op's forward/backward collects that op's NumPy work.

`--serial` (no profiler) measures CPU time per thread: the calling thread does the serial work plus its share of
every chunked op, the other threads only chunks; with T threads sharing chunks evenly, the serial CPU time is
main - other / (T - 1), and Amdahl's law projects the step time on more cores from it. Chunks with disjoint
outputs go to whichever thread is free, so the calling thread may take fewer of them: the estimate is then a
lower bound (clamped at 0), and the projection an upper bound.

`--scaling` times every op's forward and backward (wall time, the calling thread) at 1 thread and at `--threads`,
alternating step by step in one process so that the machine's drift hits both, and lists the ops by the time they
lose against perfect scaling (time at T - time at 1 / T): where the extra cores are not used.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np
from threadpoolctl import threadpool_limits

import convolve as cv
from convolve import autograd
from convolve.models import get_model
from convolve.optim import SGD

SHAPES = {"lenet5": (1, 32, 32), "vgg_small": (3, 32, 32), "resnet20": (3, 32, 32)}


def _group(file: str, fn: str) -> str:
    if "/src/convolve/" in file:
        return file.split("/src/convolve/")[-1]
    if file == "~":
        return fn  # a C function called directly
    return "numpy (Python part)" if "numpy" in file else file.rsplit("/", 1)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("network", choices=sorted(SHAPES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--serial", action="store_true", help="CPU time per thread instead of a profile")
    parser.add_argument("--scaling", action="store_true", help="per-op time at 1 thread and at --threads")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = cv.tensor(rng.standard_normal((128, *SHAPES[args.network])).astype(np.float32))
    y = cv.tensor(rng.integers(0, 10, 128))
    model = get_model(args.network, num_classes=10)
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad()
        cv.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    if args.scaling:
        step()  # warm-up
        report_scaling(args.network, args.threads, args.steps, step)
        return
    cv.set_num_threads(args.threads)
    if args.serial:
        with threadpool_limits(limits=args.threads):
            step()  # warm-up
            report_serial(args.network, args.threads, args.steps, step)
        return
    with threadpool_limits(limits=args.threads):
        step()  # warm-up
        profile, c0 = cProfile.Profile(), time.process_time()
        profile.enable()
        for _ in range(args.steps):
            step()
        profile.disable()
        cpu = (time.process_time() - c0) / args.steps
    totals: collections.Counter[str] = collections.Counter()
    for (file, _, fn), (_, _, self_time, _, _) in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
        totals[_group(file, fn)] += self_time
    grand = sum(totals.values())
    print(f"{args.network}: CPU {cpu * 1e3:.0f} ms per step (profiled, {args.threads} thread(s)); self time by file:")
    for name, seconds in totals.most_common(12):
        print(f"  {name:48s} {seconds / args.steps * 1e3:8.1f} ms/step {100 * seconds / grand:5.1f}%")


def report_serial(network: str, threads: int, steps: int, step: Callable[[], None]) -> None:
    """Median CPU time per step of the calling thread and of the others; the serial part; Amdahl's projection."""
    main_cpu, all_cpu, wall = [], [], []
    for _ in range(steps):
        t0, c0, w0 = time.thread_time(), time.process_time(), time.perf_counter()
        step()
        main_cpu.append(time.thread_time() - t0)
        all_cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    main, total = statistics.median(main_cpu), statistics.median(all_cpu)
    other = total - main
    serial = max(0.0, main - other / (threads - 1)) if threads > 1 else total
    parallel = total - serial
    print(f"{network}: {threads} thread(s), wall {statistics.median(wall) * 1e3:.0f} ms, CPU {total * 1e3:.0f} ms "
          f"(calling thread {main * 1e3:.0f}, others {other * 1e3:.0f}); serial {serial * 1e3:.0f} ms = "
          f"{100 * serial / total:.0f}% of the CPU time")
    for cores in (2, 4, 8):
        print(f"  Amdahl at {cores} cores: {(serial + parallel / cores) * 1e3:.0f} ms CPU-equivalent per step, "
              f"speedup {total / (serial + parallel / cores):.2f}x over one core")


@contextlib.contextmanager
def _op_timer(times: dict[str, float]) -> Iterator[None]:
    """Add each op's forward (`Function.apply`) and backward wall time to `times[op (output shape)]` in the block."""
    apply, call_backward = autograd.Function.apply.__func__, autograd._call_backward  # type: ignore[attr-defined]

    def timed_apply(cls: type, *args: object, **kwargs: object) -> object:
        t0 = time.perf_counter()
        out = apply(cls, *args, **kwargs)
        times[f"forward  {cls.__name__} {tuple(out.shape)}"] += time.perf_counter() - t0
        return out

    def timed_backward(fn: type, ctx: object, grad: np.ndarray, n_inputs: int) -> object:
        t0 = time.perf_counter()
        out = call_backward(fn, ctx, grad, n_inputs)
        times[f"backward {fn.__name__} {tuple(grad.shape)}"] += time.perf_counter() - t0
        return out

    autograd.Function.apply = classmethod(timed_apply)  # type: ignore[method-assign,assignment]
    autograd._call_backward = timed_backward
    try:
        yield
    finally:
        autograd.Function.apply = classmethod(apply)  # type: ignore[method-assign,assignment]
        autograd._call_backward = call_backward


def report_scaling(network: str, threads: int, steps: int, step: Callable[[], None], rows: int = 20) -> None:
    """Median per-op wall time per step at 1 and `threads` threads (alternating steps), the ops that lose the most
    against perfect scaling first; "outside the ops" is the rest of the step (optimizer, graph walk, glue)."""
    if threads < 2:
        raise ValueError(f"profile_step --scaling: `--threads` must be at least 2, got {threads}")
    samples: dict[int, dict[str, list[float]]] = {count: collections.defaultdict(list) for count in (1, threads)}
    for _ in range(steps):
        for count in samples:
            cv.set_num_threads(count)
            times: collections.defaultdict[str, float] = collections.defaultdict(float)
            with threadpool_limits(limits=count), _op_timer(times):
                t0 = time.perf_counter()
                step()
                wall = time.perf_counter() - t0
            times["outside the ops"] = wall - sum(times.values())
            times["whole step"] = wall
            for name, seconds in times.items():
                samples[count][name].append(seconds)
    one, many = ({name: statistics.median(v) * 1e3 for name, v in samples[count].items()} for count in (1, threads))
    lost = {name: many.get(name, 0.0) - one[name] / threads for name in one}
    print(f"{network}: median ms per step over {steps} steps at 1 and {threads} threads; lost = time at {threads} - "
          f"time at 1 / {threads}")
    print(f"  {'op (output or gradient shape)':52s} {'1 thr':>8s} {f'{threads} thr':>8s} {'speedup':>7s} {'lost':>7s}")
    for name in sorted(lost, key=lambda n: (n != "whole step", -lost[n]))[:rows]:
        t1, tn = one[name], many.get(name, float("nan"))
        print(f"  {name:52s} {t1:8.2f} {tn:8.2f} {t1 / tn:7.2f} {lost[name]:7.2f}")


if __name__ == "__main__":
    main()
