"""Per-op benchmark: convolve vs PyTorch, forward and forward+backward, same process, medians over repeats.

    python benchmarks/bench_ops.py                # every case, 1 and 2 threads
    python benchmarks/bench_ops.py --threads 1 --repeat 5 --only vgg

Prints a table: median wall time, GFLOP/s (2 x MACs per forward; forward+backward counts 3x the forward's
FLOPs: output, input gradient and weight gradient are one GEMM each), the median per-round ratio
convolve / PyTorch (they alternate call by call) and the median CPU time of forward+backward. `ref f+b` is
convolve's "numpy" engine (the "fast" engine without its compiled Numba kernels), timed in the same rounds.
PyTorch is the yardstick only; it is never imported by the library.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as TF
from threadpoolctl import threadpool_limits

import convolve as cv
import convolve.nn.functional as F

LIBS = ("cv", "ref", "torch")


@dataclass(frozen=True)
class Case:
    """One benchmark: an op ('conv', 'maxpool', 'avgpool', 'relu', 'batchnorm') on an input of `shape`."""

    name: str
    op: str
    shape: tuple[int, int, int, int]  # (N, C, H, W)
    out_channels: int = 0
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1

    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.shape[1] // self.groups, self.kernel, self.kernel)

    def output_hw(self) -> tuple[int, int]:
        eff = self.dilation * (self.kernel - 1) + 1
        h = (self.shape[2] + 2 * self.padding - eff) // self.stride + 1
        w = (self.shape[3] + 2 * self.padding - eff) // self.stride + 1
        return h, w

    def forward_flops(self) -> float:
        """2 x MACs of the forward pass (pooling: one op per window element)."""
        n, c, _, _ = self.shape
        oh, ow = self.output_hw()
        if self.op == "conv":
            return 2.0 * n * self.out_channels * oh * ow * (c // self.groups) * self.kernel**2
        if self.op in ("relu", "batchnorm"):
            return float(np.prod(self.shape))  # one op per element
        return float(n * c * oh * ow * self.kernel**2)


CASES = [
    Case("lenet c1 1x28x28->6 5x5 p2", "conv", (128, 1, 28, 28), 6, 5, 1, 2),
    Case("lenet c3 6x14x14->16 5x5", "conv", (128, 6, 14, 14), 16, 5),
    Case("vgg 3x32x32->64", "conv", (128, 3, 32, 32), 64, 3, 1, 1),
    Case("vgg 64x32x32->64", "conv", (128, 64, 32, 32), 64, 3, 1, 1),
    Case("vgg 128x16x16->128", "conv", (128, 128, 16, 16), 128, 3, 1, 1),
    Case("vgg 256x8x8->256", "conv", (128, 256, 8, 8), 256, 3, 1, 1),
    Case("alexnet conv1 11x11/4", "conv", (32, 3, 227, 227), 96, 11, 4, 0),
    Case("dilated 3x3 d2 64->64", "conv", (128, 64, 32, 32), 64, 3, 1, 2, 2),
    Case("1x1 128->64", "conv", (128, 128, 16, 16), 64, 1),
    Case("grouped g2 128->128", "conv", (128, 128, 16, 16), 128, 3, 1, 1, 1, 2),
    Case("depthwise 64", "conv", (128, 64, 32, 32), 64, 3, 1, 1, 1, 64),
    Case("resnet20 16x32x32->16", "conv", (128, 16, 32, 32), 16, 3, 1, 1),
    Case("resnet20 16x32x32->32 /2", "conv", (128, 16, 32, 32), 32, 3, 2, 1),
    Case("resnet20 32x16x16->32", "conv", (128, 32, 16, 16), 32, 3, 1, 1),
    Case("resnet20 64x8x8->64", "conv", (128, 64, 8, 8), 64, 3, 1, 1),
    Case("maxpool 2x2/2 64x32x32", "maxpool", (128, 64, 32, 32), kernel=2, stride=2),
    Case("maxpool 3x3/2 96x55x55", "maxpool", (32, 96, 55, 55), kernel=3, stride=2),
    Case("avgpool 2x2/2 64x32x32", "avgpool", (128, 64, 32, 32), kernel=2, stride=2),
    Case("relu 64x32x32", "relu", (128, 64, 32, 32)),
    Case("relu 16x32x32", "relu", (128, 16, 32, 32)),
    Case("batchnorm 16x32x32", "batchnorm", (128, 16, 32, 32)),
    Case("batchnorm 32x16x16", "batchnorm", (128, 32, 16, 16)),
    Case("batchnorm 64x8x8", "batchnorm", (128, 64, 8, 8)),
]


def _ops(case: Case, lib: str) -> Callable:
    """The op of `case` as a function of (x, w) for library 'cv' or 'torch'."""
    if case.op == "conv":
        conv = F.conv2d if lib == "cv" else TF.conv2d
        return lambda x, w: conv(x, w, stride=case.stride, padding=case.padding, dilation=case.dilation,
                                 groups=case.groups)
    if case.op == "relu":
        relu = F.relu if lib == "cv" else TF.relu
        return lambda x, w: relu(x)
    if case.op == "batchnorm":  # training mode, affine: w holds (weight, bias)
        bn = F.batch_norm if lib == "cv" else TF.batch_norm
        return lambda x, w: bn(x, None, None, w[0], w[1], training=True)
    pool = {("maxpool", "cv"): F.max_pool2d, ("maxpool", "torch"): TF.max_pool2d,
            ("avgpool", "cv"): F.avg_pool2d, ("avgpool", "torch"): TF.avg_pool2d}[(case.op, lib)]
    return lambda x, w: pool(x, case.kernel, case.stride)


def _clock(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _inputs(case: Case, lib: str, rng: np.random.Generator) -> tuple[Callable[[], object], Callable[[], None]]:
    """The (forward, forward+backward) closures of `case` in `lib`, float32: 'cv' (convolve's "fast" engine,
    with its compiled kernels), 'ref' (its "numpy" engine: no compiled kernels) or 'torch'."""
    x_np = rng.standard_normal(case.shape).astype(np.float32)
    w_np = (rng.standard_normal(case.weight_shape()) * 0.1).astype(np.float32) if case.op == "conv" else None
    op = _ops(case, "torch" if lib == "torch" else "cv")
    make = (lambda a, g: torch.tensor(a, requires_grad=g)) if lib == "torch" else (
        lambda a, g: cv.tensor(a, requires_grad=g))
    no_grad = torch.no_grad if lib == "torch" else cv.no_grad
    x, xg = make(x_np, False), make(x_np, True)
    w: object = None if w_np is None else make(w_np, True)
    if case.op == "batchnorm":
        c = case.shape[1]
        w = (make(np.ones(c, np.float32), True), make(np.zeros(c, np.float32), True))
    engine = (lambda: cv.use_engine("fast" if lib == "cv" else "numpy")) if lib != "torch" else contextlib.nullcontext

    def forward() -> object:
        with no_grad(), engine():
            return op(x, w)

    out_shape = tuple(forward().shape)  # type: ignore[attr-defined]
    grad_np = rng.standard_normal(out_shape).astype(np.float32)
    g = torch.tensor(grad_np) if lib == "torch" else cv.tensor(grad_np)

    def train() -> None:
        with engine():
            op(xg, w).backward(g)

    return forward, train


def time_case(case: Case, repeat: int) -> dict[str, float]:
    """Median seconds (wall and CPU) of forward and forward+backward for both libraries.

    The two libraries alternate call by call, so that a burst of load from other processes on this shared
    machine hits both; the ratio reported is the median of the per-round ratios.
    """
    rng = np.random.default_rng(0)
    fns = {lib: _inputs(case, lib, rng) for lib in LIBS}
    samples: dict[str, list[float]] = {}
    for lib in LIBS:  # warm-up: allocations, BLAS/OpenMP thread start, loading the Numba kernels
        fns[lib][0]()
        fns[lib][1]()
    for _ in range(repeat):
        for kind, idx in (("fwd", 0), ("fwdbwd", 1)):
            for lib in LIBS:
                wall, cpu = _clock(fns[lib][idx])
                samples.setdefault(f"{lib}_{kind}", []).append(wall)
                samples.setdefault(f"{lib}_{kind}_cpu", []).append(cpu)
    results = {k: statistics.median(v) for k, v in samples.items()}
    for kind in ("fwd", "fwdbwd"):
        for lib in ("cv", "ref"):
            ratios = [a / b for a, b in zip(samples[f"{lib}_{kind}"], samples[f"torch_{kind}"])]
            results[f"{'' if lib == 'cv' else 'ref_'}ratio_{kind}"] = statistics.median(ratios)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", default="", help="run only cases whose name contains this text")
    args = parser.parse_args()
    header = (f"{'case':28s} {'thr':>3s} {'fwd ms':>7s} {'torch':>7s} {'ratio':>5s} {'GF/s':>5s} "
              f"{'f+b ms':>7s} {'torch':>7s} {'ratio':>5s} {'GF/s':>5s} {'cpu ms':>7s} {'torch':>7s} "
              f"{'ref f+b':>7s} {'ratio':>5s}")
    print(header)
    print("-" * len(header))
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads):
            for case in CASES:
                if args.only and args.only not in case.name:
                    continue
                r = time_case(case, args.repeat)
                flops = case.forward_flops()
                fb_flops = flops * (3 if case.op == "conv" else 2)
                print(f"{case.name:28s} {threads:3d} {r['cv_fwd'] * 1e3:7.2f} {r['torch_fwd'] * 1e3:7.2f} "
                      f"{r['ratio_fwd']:5.2f} {flops / r['cv_fwd'] / 1e9:5.1f} "
                      f"{r['cv_fwdbwd'] * 1e3:7.2f} {r['torch_fwdbwd'] * 1e3:7.2f} "
                      f"{r['ratio_fwdbwd']:5.2f} {fb_flops / r['cv_fwdbwd'] / 1e9:5.1f} "
                      f"{r['cv_fwdbwd_cpu'] * 1e3:7.2f} {r['torch_fwdbwd_cpu'] * 1e3:7.2f} "
                      f"{r['ref_fwdbwd'] * 1e3:7.2f} {r['ref_ratio_fwdbwd']:5.2f}", flush=True)


if __name__ == "__main__":
    main()
