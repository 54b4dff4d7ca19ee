"""Runs each hostile-file case under an address-space limit: `python hostile_driver.py ROOT LIMIT_BYTES SECONDS`.

The limit is set before NumPy is imported, so a reader that expands a bomb fails with MemoryError instead of
taking the machine down; each case also gets SECONDS of wall time (SIGALRM). Prints JSON {case: {"error": type
name or null, "message": text, "seconds": wall time}}.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import time
from pathlib import Path

ROOT, LIMIT, SECONDS = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

import convolve as cv  # noqa: E402 (after the memory limit)
from convolve.cli.images import read_image  # noqa: E402
from convolve.data import CIFAR10, MNIST  # noqa: E402

CASES = {
    "cifar_shared_nested_labels": lambda: CIFAR10(ROOT / "cifar_shared", train=False),
    "cifar_deeply_nested_list": lambda: CIFAR10(ROOT / "cifar_deep", train=False),
    "cifar_tar_3gib_member": lambda: CIFAR10(ROOT / "cifar_tar", train=False),
    "mnist_gz_bomb_after_valid_header": lambda: MNIST(ROOT / "mnist_bomb", train=False),
    "mnist_gz_bomb_bad_magic": lambda: MNIST(ROOT / "mnist_bad_magic", train=False),
    "mnist_header_declares_billions": lambda: MNIST(ROOT / "mnist_huge", train=False),
    "npz_member_bomb_small_index": lambda: cv.load(ROOT / "bomb_small_index.npz"),
    "npz_member_bomb_matching_index": lambda: cv.load(ROOT / "bomb_matching_index.npz"),
    "npz_member_larger_than_index": lambda: cv.load(ROOT / "index_lies.npz"),
    "png_20000x20000": lambda: read_image(ROOT / "huge.png"),
    "png_idat_bomb": lambda: read_image(ROOT / "idat_bomb.png"),
    "pgm_20000x20000": lambda: read_image(ROOT / "huge.pgm"),
    "npy_header_declares_gigabytes": lambda: read_image(ROOT / "huge.npy"),
    "load_a_directory": lambda: cv.load(ROOT),
    "npz_index_nested_200_deep": lambda: cv.load(ROOT / "deep200.npz"),
    "npz_index_nested_100000_deep": lambda: cv.load(ROOT / "deep100000.npz"),
}


def _timeout(signum, frame):
    raise TimeoutError(f"still running after {SECONDS} s")


def main() -> None:
    signal.signal(signal.SIGALRM, _timeout)
    results = {}
    for name, case in CASES.items():
        start = time.perf_counter()
        signal.alarm(SECONDS)
        try:
            case()
            results[name] = {"error": None, "message": ""}
        except BaseException as e:  # report everything, MemoryError and RecursionError included
            results[name] = {"error": type(e).__name__, "message": str(e)[:500]}
        finally:
            signal.alarm(0)
        results[name]["seconds"] = round(time.perf_counter() - start, 3)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
