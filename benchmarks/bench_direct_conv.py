"""Direct (Numba) convolution vs the channels-last im2col + OpenBLAS path vs PyTorch, per pass, 1 thread.

    python benchmarks/bench_direct_conv.py                # ResNet-20's layers and LeNet-5's C3, batch 128
    python benchmarks/bench_direct_conv.py --repeat 7 --only 16x32

For each layer it times, in one process, alternating the variants within each repeat (min over repeats, wall
time, single-threaded: `threadpool_limits(1)` and `convolve.set_num_threads(1)`):
  * fwd: the forward pass; dx: the input gradient only; dw: the weight gradient only (bias gradient excluded);
  * gemm: `GemmConv2d`; numpy: the kernel the "numpy" engine (the "fast" one without its compiled kernels)
    picks (named in the last column: GemmConv2d, Winograd for 128 channels, or SmallConv2d for the 1x1 and
    few-channel layers); direct: `DirectConv2d`;
    all through their Function's forward/backward with a Context, so the same code as training;
  * torch: `torch.nn.functional.conv2d` forward and `torch.ops.aten.convolution_backward` with one output mask
    per pass, NCHW and channels_last.
GFLOP/s counts 2*N*K*C*kh*kw*oh*ow per pass. The direct kernel's first-call time (Numba compile, or loading its
on-disk cache) is measured before the loop and printed separately.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from gemm_floor import BATCH, Layer  # benchmarks/gemm_floor.py, beside this script: the same layer records
from threadpoolctl import threadpool_limits

import convolve as cv
from convolve.autograd import Context
from convolve.engines.compiled.direct_conv import DirectConv2d
from convolve.engines.gemm_nhwc import GemmConv2d
from convolve.engines.policy import policy
from convolve.nn.functional.conv import Conv2dFunction


def flops(layer: Layer) -> float:
    """FLOPs of one pass of `layer` over the batch (2 x multiply-adds)."""
    return 2.0 * BATCH * layer.k * layer.c * layer.kernel**2 * layer.out_hw**2


LAYERS = [
    Layer("16x32x32->16", 16, 32, 16),
    Layer("16x32x32->32 /2", 16, 32, 32, stride=2),
    Layer("32x16x16->32", 32, 16, 32),
    Layer("32x16x16->64 /2", 32, 16, 64, stride=2),
    Layer("64x8x8->64", 64, 8, 64),
    Layer("1x1 16x32x32->32 /2", 16, 32, 32, kernel=1, stride=2, padding=0),
    Layer("1x1 32x16x16->64 /2", 32, 16, 64, kernel=1, stride=2, padding=0),
    Layer("lenet c3 6x14x14->16 5x5", 6, 14, 16, kernel=5, padding=0),
    Layer("vgg 64x32x32->64", 64, 32, 64),  # bounds of `prefers`: more channels, larger images
    Layer("vgg 128x16x16->128", 128, 16, 128),
]


def _geometry(layer: Layer) -> dict[str, object]:
    return {"stride": (layer.stride,) * 2, "padding": ((layer.padding,) * 2,) * 2, "dilation": (1, 1), "groups": 1}


def _convolve_passes(kernel: type, layer: Layer, x: np.ndarray, w: np.ndarray,
                     g: np.ndarray) -> dict[str, Callable[[], object]]:
    geometry = _geometry(layer)

    def fwd() -> Context:
        ctx = Context()
        kernel.forward(ctx, x, w, None, **geometry)
        return ctx

    saved = fwd()

    def grad(needs: tuple[bool, bool, bool]) -> Callable[[], object]:
        def run() -> object:
            saved.needs_input_grad = needs
            return kernel.backward(saved, g)
        return run

    return {"fwd": fwd, "dx": grad((True, False, False)), "dw": grad((False, True, False))}


def _torch_passes(layer: Layer, x: np.ndarray, w: np.ndarray, g: np.ndarray,
                  channels_last: bool) -> dict[str, Callable[[], object]]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xt, wt, gt = (torch.from_numpy(a).contiguous(memory_format=fmt) for a in (x, w, g))
    stride, pad = [layer.stride] * 2, [layer.padding] * 2

    def back(mask: list[bool]) -> Callable[[], object]:
        return lambda: torch.ops.aten.convolution_backward(gt, xt, wt, None, stride, pad, [1, 1], False, [0, 0], 1,
                                                           mask)

    with torch.no_grad():
        return {"fwd": lambda: torch.nn.functional.conv2d(xt, wt, stride=layer.stride, padding=layer.padding),
                "dx": back([True, False, False]), "dw": back([False, True, False])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="", help="substring of the layer names to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("first call of the direct kernel (compile or cache load): ", end="", flush=True)
    t0 = time.perf_counter()
    probe = Layer("probe", 2, 5, 3)
    _convolve_passes(DirectConv2d, probe, *(rng.standard_normal(s, dtype=np.float32) for s in
                                            ((1, 2, 5, 5), (3, 2, 3, 3), (1, 3, 5, 5))))
    print(f"{time.perf_counter() - t0:.2f} s\n")
    names = ["gemm", "numpy", "direct", "torch", "torch_cl"]
    header = " ".join(f"{n + ' ms':>10s} {'GF/s':>5s}" for n in names)
    print(f"{'layer (batch 128, 1 thread)':28s} {'pass':4s} {header} {'gemm/direct':>11s} {'numpy/direct':>12s}"
          "  numpy kernel")
    with threadpool_limits(limits=1):
        for layer in LAYERS:
            if args.only not in layer.name:
                continue
            x = rng.standard_normal((BATCH, layer.c, layer.h, layer.h), dtype=np.float32)
            w = rng.standard_normal((layer.k, layer.c, layer.kernel, layer.kernel), dtype=np.float32)
            g = rng.standard_normal((BATCH, layer.k, layer.out_hw, layer.out_hw), dtype=np.float32)
            with cv.use_engine("numpy"):
                numpy_kernel = policy.select(Conv2dFunction, x, w, None, **_geometry(layer))
            variants = {"gemm": _convolve_passes(GemmConv2d, layer, x, w, g),
                        "numpy": _convolve_passes(numpy_kernel, layer, x, w, g),
                        "direct": _convolve_passes(DirectConv2d, layer, x, w, g),
                        "torch": _torch_passes(layer, x, w, g, False), "torch_cl": _torch_passes(layer, x, w, g, True)}
            for pass_ in ("fwd", "dx", "dw"):
                best = dict.fromkeys(names, float("inf"))
                for fns in variants.values():
                    fns[pass_]()  # warm-up
                for _ in range(args.repeat):
                    for name in names:
                        t0 = time.perf_counter()
                        variants[name][pass_]()
                        best[name] = min(best[name], time.perf_counter() - t0)
                cells = " ".join(f"{best[n] * 1e3:10.2f} {flops(layer) / best[n] / 1e9:5.0f}" for n in names)
                print(f"{layer.name:28s} {pass_:4s} {cells} {best['gemm'] / best['direct']:11.2f} "
                      f"{best['numpy'] / best['direct']:12.2f}  {numpy_kernel.__name__}", flush=True)


if __name__ == "__main__":
    main()
