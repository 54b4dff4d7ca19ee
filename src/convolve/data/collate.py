"""`default_collate` and `default_convert` (torch.utils.data's rules): a list of samples becomes one batch.

Tensors and arrays are stacked along a new first axis (into a Tensor), Python ints/floats/bools become int64 /
float64 / bool Tensors, strings stay a list, and mappings, named tuples and sequences are collated field by field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from convolve.tensor import Tensor


def _stack(arrays: list[np.ndarray], what: str) -> Tensor:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise RuntimeError(
            f"default_collate: stack expects each {what} to be of equal size, got shapes {sorted(shapes)}; "
            "pad or resize the samples, or pass a `collate_fn` that handles ragged samples"
        )
    return Tensor._from_array(np.stack(arrays))


def default_collate(batch: Sequence[Any]) -> Any:
    """Collate a list of samples into a batch, as `torch.utils.data.default_collate`."""
    if len(batch) == 0:
        raise ValueError("default_collate: `batch` is empty")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack([b.data for b in batch], "tensor")
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "OSU":
            raise TypeError(f"default_collate: arrays of dtype {elem.dtype} cannot be batched into a Tensor")
        return _stack([np.asarray(b) for b in batch], "array")
    if isinstance(elem, np.generic):
        return Tensor._from_array(np.asarray(batch))
    if isinstance(elem, bool):
        return Tensor._from_array(np.asarray(batch, dtype=bool))
    if isinstance(elem, int):
        return Tensor._from_array(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor._from_array(np.asarray(batch, dtype=np.float64))
    if isinstance(elem, str | bytes):
        return list(batch)
    if isinstance(elem, Mapping):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(elem, Sequence):
        if len({len(b) for b in batch}) != 1:
            raise RuntimeError("default_collate: each element in list of batch should be of equal size")
        return [default_collate(list(field)) for field in zip(*batch)]
    raise TypeError(
        f"default_collate: batch must contain tensors, NumPy arrays, numbers, dicts or lists; found "
        f"{type(elem).__name__}. Pass a `collate_fn` to the DataLoader that knows how to batch it"
    )


def default_convert(data: Any) -> Any:
    """Turn NumPy arrays (also inside mappings and sequences) into Tensors; the rest is left as it is."""
    if isinstance(data, np.ndarray) and data.dtype.kind not in "OSU":
        return Tensor._from_array(data)
    if isinstance(data, Mapping):
        return {key: default_convert(value) for key, value in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple | list):
        return type(data)(default_convert(d) for d in data)
    return data
