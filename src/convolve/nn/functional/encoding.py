"""one_hot: class indices to one-hot rows, as `torch.nn.functional.one_hot` (int64 out, not differentiable)."""

from __future__ import annotations

import numpy as np

from convolve.tensor import Tensor

__all__ = ["one_hot"]


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """(*) int64 class indices -> (*, num_classes) int64 with a single 1 per row; -1 infers max + 1 classes."""
    fn = "one_hot"
    if not isinstance(tensor, Tensor) or tensor.dtype != np.int64:
        got = tensor.dtype if isinstance(tensor, Tensor) else type(tensor).__name__
        raise TypeError(f"{fn}: `tensor` must be an int64 Tensor of class indices, got {got} (use .long())")
    idx = tensor.data
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < -1:
        raise ValueError(f"{fn}: `num_classes` must be a non-negative int or -1, got {num_classes!r}")
    if idx.size and idx.min() < 0:
        raise ValueError(f"{fn}: class values must be non-negative, found {int(idx.min())}")
    if num_classes == -1:
        if idx.size == 0:
            raise ValueError(f"{fn}: cannot infer `num_classes` of an empty tensor; pass it")
        num_classes = int(idx.max()) + 1
    if idx.size and idx.max() >= num_classes:
        raise ValueError(f"{fn}: class values must be smaller than num_classes (={num_classes}), "
                         f"found {int(idx.max())}")
    out = np.zeros((*idx.shape, num_classes), dtype=np.int64)
    np.put_along_axis(out, idx[..., None], 1, axis=-1)
    return Tensor._from_array(out)
