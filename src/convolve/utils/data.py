"""PyTorch's `torch.utils.data` path for `convolve.data`: datasets, samplers, DataLoader, default_collate."""

from convolve.data import *  # noqa: F403
from convolve.data import __all__  # noqa: F401
