"""Argument checks shared by the layer constructors (channel and feature counts)."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_count(value: Any, name: str, fn: str) -> int:
    """`value` as an int when it is a positive integer (not a bool), else a ValueError naming `fn` and `name`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{fn}: `{name}` must be a positive integer, got {value!r}")
    return int(value)
