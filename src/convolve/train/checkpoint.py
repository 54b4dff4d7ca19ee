"""Training checkpoints: model, optimizer, scheduler, RNG states, epoch, history and metadata in one .npz file.

The model's `state_dict()` is stored as is under "model" (so `convolve.io.load(path)["model"]` is a plain state
dict). Everything else (optimizer/scheduler state dicts with int keys, tuples, 128-bit RNG states) is packed into
arrays plus a JSON skeleton, so the round trip is exact: float32 buffers keep their bits, ints stay ints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from convolve.tensor import Tensor

JSON_KEY = "__json__"


def _encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """A JSON-able skeleton of `obj`; arrays/tensors/NumPy scalars are moved into `arrays` and referenced."""
    if isinstance(obj, Tensor):
        name = f"a{len(arrays)}"
        arrays[name] = np.array(obj.data, copy=True)
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray | np.generic):
        name = f"a{len(arrays)}"
        arrays[name] = np.array(obj, copy=True)
        return {"__array__": name, "scalar": isinstance(obj, np.generic)}
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"save_checkpoint: cannot store a value of type {type(obj).__name__} ({obj!r:.60})")


def _decode(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of `_encode`."""
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return Tensor(np.array(arrays[node["__tensor__"]], copy=True))
    if "__array__" in node:
        arr = np.array(arrays[node["__array__"]], copy=True)
        return arr[()] if node.get("scalar") else arr
    if "__tuple__" in node:
        return tuple(_decode(v, arrays) for v in node["__tuple__"])
    return {_decode(k, arrays): _decode(v, arrays) for k, v in node["__dict__"]}


def pack(obj: Any) -> dict[str, np.ndarray]:
    """Any nesting of dicts/lists/tuples/scalars/arrays as a flat {name: ndarray} dict (JSON under '__json__')."""
    arrays: dict[str, np.ndarray] = {}
    skeleton = _encode(obj, arrays)
    arrays[JSON_KEY] = np.frombuffer(json.dumps(skeleton).encode(), dtype=np.uint8).copy()
    return arrays


def unpack(arrays: dict[str, Any]) -> Any:
    """Inverse of `pack`."""
    plain = {k: np.asarray(getattr(v, "data", v)) for k, v in arrays.items()}
    skeleton = json.loads(plain[JSON_KEY].astype(np.uint8).tobytes().decode())
    return _decode(skeleton, plain)


def save_checkpoint(path: str | Path, model_state: dict[str, Any], extra: dict[str, Any]) -> Path:
    """Write {"model": model_state, "train": pack(extra)} atomically (temporary file + rename)."""
    from convolve import io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    model_arrays = {k: np.array(getattr(v, "data", v), copy=True) for k, v in model_state.items()}
    io.save({"model": model_arrays, "train": pack(extra)}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint: (model state dict as arrays, the `extra` dict given to `save_checkpoint`)."""
    from convolve import io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path}")
    try:
        obj = io.load(path)
        model = {k: np.asarray(getattr(v, "data", v)) for k, v in obj["model"].items()}
        extra = unpack(obj["train"]) if "train" in obj else {}
    except (KeyError, ValueError, OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"load_checkpoint: {path} is not a convolve training checkpoint ({e})") from e
    return model, extra
