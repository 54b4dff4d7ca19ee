"""`convolve.backends.cudnn`: PyTorch seeding code sets `torch.backends.cudnn.deterministic/benchmark`. convolve
has no cuDNN; its CPU kernels are deterministic, so these flags are recorded and change nothing."""

from __future__ import annotations


class _CuDNN:
    """cuDNN switches: `deterministic` (convolve always is), `benchmark` (no algorithm search to enable)."""

    enabled = False
    deterministic = True
    benchmark = False

    @staticmethod
    def is_available() -> bool:
        return False


cudnn = _CuDNN()

__all__ = ["cudnn"]
