"""Random state: one global NumPy generator, reseeded by `manual_seed`, and explicit `Generator`s."""

from __future__ import annotations

from typing import Any

import numpy as np


class Generator:
    """An explicit source of randomness (as `torch.Generator`), wrapping a NumPy `Generator`."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def manual_seed(self, seed: int) -> Generator:
        self.rng = np.random.default_rng(seed)
        return self

    def get_state(self) -> Any:
        return self.rng.bit_generator.state

    def set_state(self, state: Any) -> None:
        self.rng.bit_generator.state = state


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the global generator used by initializers, dropout and shuffling; returns it."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"manual_seed: `seed` must be a non-negative integer, got {seed!r}")
    return default_generator.manual_seed(int(seed))


def rng(generator: Generator | None = None) -> np.random.Generator:
    """The NumPy generator to draw from: `generator`'s, or the global one."""
    return (generator or default_generator).rng
