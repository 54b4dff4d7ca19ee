"""Training checkpoints: model, optimizer, scheduler, RNG states, epoch, history and metadata in one .npz file.

Layout (readable with `convolve.io.load`): {"model": state dict, "train": {"epoch", "optimizer", "scheduler",
"rng", "history", "meta", ...}}. `convolve.io` stores every array bit for bit and ints/tuples/int keys exactly,
which is what makes resume exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convolve import io


def save_checkpoint(path: str | Path, model_state: dict[str, Any], extra: dict[str, Any]) -> Path:
    """Write {"model": model_state (as arrays), "train": extra} atomically to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model_arrays = {k: np.array(getattr(v, "data", v), copy=True) for k, v in model_state.items()}
    io.save({"model": model_arrays, "train": extra}, path)
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint: (model state dict as arrays, the `extra` dict given to `save_checkpoint`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path}")
    obj = io.load(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise ValueError(f"load_checkpoint: {path} is not a convolve training checkpoint (no 'model' state dict)")
    model = {k: np.asarray(getattr(v, "data", v)) for k, v in obj["model"].items()}
    extra = obj.get("train") or {}
    return model, extra
