"""The GEMM floor of a convolution: how fast its three matrix products alone run in NumPy (OpenBLAS) vs PyTorch.

    python benchmarks/gemm_floor.py             # the VGG / ResNet-20 layers, 1 thread, batch 128

For each 3x3 layer (padding 1) it times, in one process, single-threaded, CPU time (median):
  * torch conv2d forward+backward (oneDNN);
  * the three GEMMs of the im2col formulation with NumPy, in the shapes convolve's engine issues (4 MB chunks):
    y = cols @ W, dW^T += cols^T @ dY, dX = cols(dY) @ W_flipped; no im2col, no copies: a lower bound;
  * the same three GEMMs with torch.mm (MKL), to separate "OpenBLAS vs MKL" from "im2col vs direct conv".
If NumPy's GEMM-only time already exceeds torch's whole conv, no im2col design on OpenBLAS can reach parity.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits

LAYERS = [(64, 32, 64), (128, 16, 128), (256, 8, 256), (16, 32, 16), (32, 16, 32), (64, 8, 64)]  # (C, H=W, K)
BATCH, BUDGET = 128, 4 * 2**20


def _cpu_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return statistics.median(times) * 1e3


def _gemms(lib: str, c: int, hw: int, k: int) -> Callable[[], None]:
    """The chunked forward, weight-gradient and input-gradient GEMMs of a 3x3 'same' conv, in `lib`."""
    rows = max(1, BUDGET // (hw * hw * 9 * c * 4)) * hw * hw  # rows of one chunk
    chunks = -(-BATCH * hw * hw // rows)
    rng = np.random.default_rng(0)
    cols, w = rng.random((rows, 9 * c), dtype=np.float32), rng.random((9 * c, k), dtype=np.float32)
    gcols, wf = rng.random((rows, 9 * k), dtype=np.float32), rng.random((9 * k, c), dtype=np.float32)
    g = rng.random((rows, k), dtype=np.float32)
    if lib == "torch":
        cols, w, gcols, wf, g = (torch.from_numpy(a) for a in (cols, w, gcols, wf, g))

    def run() -> None:
        for _ in range(chunks):
            _ = cols @ w  # forward
            _ = cols.T @ g  # weight gradient
            _ = gcols @ wf  # input gradient (flipped-filter convolution)

    return run


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'layer (batch 128)':22s} {'torch conv f+b':>14s} {'numpy 3 GEMMs':>13s} {'torch.mm 3 GEMMs':>16s} "
          f"{'floor ratio':>11s}")
    with threadpool_limits(limits=1):
        for c, hw, k in LAYERS:
            x = torch.randn(BATCH, c, hw, hw, requires_grad=True)
            wt = torch.randn(k, c, 3, 3, requires_grad=True)
            gy = torch.randn(BATCH, k, hw, hw)
            conv = _cpu_ms(lambda x=x, wt=wt, gy=gy: torch.nn.functional.conv2d(x, wt, padding=1).backward(gy))
            np_ms, th_ms = _cpu_ms(_gemms("numpy", c, hw, k)), _cpu_ms(_gemms("torch", c, hw, k))
            print(f"{f'{c}x{hw}x{hw}->{k}':22s} {conv:14.1f} {np_ms:13.1f} {th_ms:16.1f} {np_ms / conv:11.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
