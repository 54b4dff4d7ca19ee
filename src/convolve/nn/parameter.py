"""`Parameter`: a Tensor that a `Module` registers as learnable (requires_grad=True by default)."""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.backend import get_default_dtype
from convolve.tensor import Tensor


class Parameter(Tensor):
    """A learnable tensor; assigning one to a Module attribute registers it (as `torch.nn.Parameter`).

    `data` may be a Tensor (its array is shared, not copied), a NumPy array or anything array-like;
    `None` gives an empty tensor of the default dtype.
    """

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty((0,), dtype=get_default_dtype())
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce__(self) -> Any:
        return (Parameter, (self.data, self.requires_grad))
