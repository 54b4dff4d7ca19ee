"""`convolve.utils.data` is `convolve.data` under PyTorch's path (`torch.utils.data`), so imports carry over."""

from convolve.utils import data

__all__ = ["data"]
