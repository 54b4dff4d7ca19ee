"""The GEMM floor of a convolution: how fast its three matrix products alone run in NumPy (OpenBLAS) vs PyTorch.

    python benchmarks/gemm_floor.py             # VGG, ResNet-20 and LeNet-5 layers, 1 thread, batch 128

For each layer it times, in one process, single-threaded, CPU time (median):
  * torch conv2d forward+backward (oneDNN);
  * the three GEMMs of the im2col formulation with NumPy, in cache-resident 4 MB chunks as convolve's engine
    issues them: y = cols @ W, dW += cols^T @ dY, dcols = dY @ W^T (the input gradient before col2im; the
    flipped-filter form convolve uses for stride-1 layers has the same FLOPs for 'same' padding). No im2col, no
    col2im, no layout copies: a lower bound for any im2col design;
  * the same three GEMMs with torch.mm (MKL), to separate "OpenBLAS vs MKL" from "im2col vs direct conv".
If NumPy's GEMM-only time already exceeds torch's whole conv, no im2col design on OpenBLAS can reach parity.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from convolve.nn.functional import conv_output_size

BATCH, BUDGET = 128, 4 * 2**20


@dataclass(frozen=True)
class Layer:
    """A square conv layer: C x H x H input, K filters of kernel x kernel, stride, zero padding."""

    name: str
    c: int
    h: int
    k: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1

    @property
    def out_hw(self) -> int:
        return conv_output_size(self.h, self.kernel, self.stride, self.padding)


LAYERS = [
    Layer("vgg 64x32x32->64", 64, 32, 64),
    Layer("vgg 128x16x16->128", 128, 16, 128),
    Layer("vgg 256x8x8->256", 256, 8, 256),
    Layer("resnet20 16x32x32->16", 16, 32, 16),
    Layer("resnet20 16x32x32->32 /2", 16, 32, 32, stride=2),
    Layer("resnet20 32x16x16->32", 32, 16, 32),
    Layer("resnet20 64x8x8->64", 64, 8, 64),
    Layer("lenet c3 6x14x14->16 5x5", 6, 14, 16, kernel=5, padding=0),
]


def _cpu_ms(fn: Callable[[], object], repeat: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return statistics.median(times) * 1e3


def _gemms(lib: str, layer: Layer) -> Callable[[], None]:
    """The chunked forward, weight-gradient and input-gradient GEMMs of `layer` in `lib` ('numpy' or 'torch')."""
    depth = layer.kernel**2 * layer.c  # columns of the im2col matrix
    per_image = layer.out_hw**2  # its rows per image
    images = max(1, BUDGET // (per_image * depth * 4))
    rows, chunks = images * per_image, -(-BATCH // images)
    rng = np.random.default_rng(0)
    cols, w = rng.random((rows, depth), dtype=np.float32), rng.random((depth, layer.k), dtype=np.float32)
    g, w_t = rng.random((rows, layer.k), dtype=np.float32), rng.random((layer.k, depth), dtype=np.float32)
    if lib == "torch":
        cols, w, g, w_t = (torch.from_numpy(a) for a in (cols, w, g, w_t))

    def run() -> None:
        for _ in range(chunks):
            _ = cols @ w  # forward (rows, K)
            _ = cols.T @ g  # weight gradient (depth, K)
            _ = g @ w_t  # input gradient's columns (rows, depth)

    return run


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'layer (batch 128)':28s} {'torch conv f+b':>14s} {'numpy 3 GEMMs':>13s} {'torch.mm 3 GEMMs':>16s} "
          f"{'floor ratio':>11s}")
    with threadpool_limits(limits=1):
        for layer in LAYERS:
            x = torch.randn(BATCH, layer.c, layer.h, layer.h, requires_grad=True)
            wt = torch.randn(layer.k, layer.c, layer.kernel, layer.kernel, requires_grad=True)
            gy = torch.randn(BATCH, layer.k, layer.out_hw, layer.out_hw)

            def conv(x: torch.Tensor = x, wt: torch.Tensor = wt, gy: torch.Tensor = gy, layer: Layer = layer) -> None:
                torch.nn.functional.conv2d(x, wt, stride=layer.stride, padding=layer.padding).backward(gy)

            conv_ms = _cpu_ms(conv)
            np_ms, th_ms = _cpu_ms(_gemms("numpy", layer)), _cpu_ms(_gemms("torch", layer))
            print(f"{layer.name:28s} {conv_ms:14.1f} {np_ms:13.1f} {th_ms:16.1f} {np_ms / conv_ms:11.2f}", flush=True)


if __name__ == "__main__":
    main()
