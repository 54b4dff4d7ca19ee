"""Keep freed memory for the next step: glibc malloc settings for a training loop.

A training step allocates and frees the same large arrays (activations, their gradients, the kernels' buffers) every
step. By default glibc's malloc gives each block over its mmap threshold (128 KB, adapting up to 32 MB) its own
mmap and unmaps it on free, and returns the heap's free top beyond 128 KB to the OS: the next step gets the memory
back page by page, one minor page fault per 4 KB that the kernel zero-fills. Measured on a 2-core machine
(benchmarks/RESULTS.md): a ResNet-20 step at batch 128 took 41,000 page faults and ~20% of its CPU time in the
kernel, a LeNet-5 step 2,700 faults and 25-35% of its time.

`keep_freed_memory()` serves blocks up to 64 MB (32 MB on glibc versions that cap it there) from the heap and
keeps up to 1 GiB of freed heap in the process: a training loop's memory stays at its peak from step to step
instead of being unmapped and faulted back (what a caching allocator does). It is applied at `import convolve`
on glibc; `CONVOLVE_KEEP_FREED_MEMORY=0` in the environment leaves malloc untouched, and
`keep_freed_memory(False)` restores glibc's initial thresholds (fixed, no longer adaptive). Elsewhere (macOS,
Windows, musl) it does nothing and returns False.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["ENV_SWITCH", "keep_freed_memory"]

ENV_SWITCH = "CONVOLVE_KEEP_FREED_MEMORY"

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_DEFAULT = 128 * 1024  # glibc's initial mmap and trim thresholds
_MMAP_THRESHOLDS = (64 * 2**20, 32 * 2**20)  # the largest first; older glibc refuses more than 32 MB
TRIM_THRESHOLD = 2**30  # freed heap kept in the process (more than a step of the zoo's models frees at batch 128)


def _mallopt() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's `mallopt`, or None on another C library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only (musl has a mallopt that does nothing)
    except (OSError, AttributeError):
        return None
    del gnu_get_libc_version
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def keep_freed_memory(enabled: bool = True) -> bool:
    """Make glibc's malloc keep freed memory for reuse (True) or restore its initial thresholds (False); returns
    whether the settings were applied (False on other C libraries)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"keep_freed_memory: `enabled` must be a bool, got {enabled!r}")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    if not enabled:
        return bool(mallopt(_M_MMAP_THRESHOLD, _DEFAULT)) and bool(mallopt(_M_TRIM_THRESHOLD, _DEFAULT))
    applied = any(mallopt(_M_MMAP_THRESHOLD, size) for size in _MMAP_THRESHOLDS)
    return applied and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def apply_default() -> bool:
    """At import: keep freed memory unless the environment says CONVOLVE_KEEP_FREED_MEMORY=0."""
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return False
    return keep_freed_memory(True)
