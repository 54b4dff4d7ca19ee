"""`convolve.cuda`: there is no GPU backend. `is_available()` is False, so the usual
`device = "cuda" if torch.cuda.is_available() else "cpu"` picks the CPU; seeding functions have nothing to seed."""

from __future__ import annotations


def is_available() -> bool:
    """Always False: convolve computes with NumPy on the CPU."""
    return False


def device_count() -> int:
    return 0


def manual_seed(seed: int) -> None:
    """No CUDA generator exists; nothing to seed (as PyTorch without a GPU)."""


def manual_seed_all(seed: int) -> None:
    """No CUDA generators exist; nothing to seed (as PyTorch without a GPU)."""


def synchronize() -> None:
    """Nothing runs asynchronously; returns at once."""


def empty_cache() -> None:
    """No device memory to release."""
