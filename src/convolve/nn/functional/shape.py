"""Shape functions with PyTorch's semantics (flatten)."""

from __future__ import annotations

from convolve._validate import check_tensor
from convolve.tensor import Tensor

__all__ = ["flatten"]


def _normalize_dim(dim: int, ndim: int, name: str, fn: str) -> int:
    """A dim in [-ndim, ndim) (a 0-D tensor counts as 1-D, as PyTorch) as a non-negative index."""
    n = max(ndim, 1)
    if isinstance(dim, bool) or not isinstance(dim, int) or not -n <= dim < n:
        raise ValueError(f"{fn}: `{name}` must be an int in [{-n}, {n - 1}] for a {ndim}-D input, got {dim!r}")
    return dim % n


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims start_dim..end_dim into one (as `torch.flatten`); a 0-D input becomes shape (1,)."""
    fn = "flatten"
    check_tensor(input, "input", fn)
    start = _normalize_dim(start_dim, input.ndim, "start_dim", fn)
    end = _normalize_dim(end_dim, input.ndim, "end_dim", fn)
    if start > end:
        raise ValueError(f"{fn}: `start_dim` ({start_dim}) must not come after `end_dim` ({end_dim})")
    if input.ndim == 0:
        return input.reshape(1)
    shape = input.shape
    merged = 1
    for n in shape[start : end + 1]:
        merged *= n
    return input.reshape((*shape[:start], merged, *shape[end + 1 :]))
