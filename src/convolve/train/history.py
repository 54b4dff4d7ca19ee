"""Per-epoch metric history, saved as CSV (one row per epoch) and JSON (one list per metric)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from convolve._atomic import write_text
from convolve.tensor import Tensor


class History:
    """A list of per-epoch records (dicts of scalars), as Keras' `History.history` but row-oriented."""

    def __init__(self, records: list[dict[str, float]] | None = None) -> None:
        self.records: list[dict[str, float]] = [dict(r) for r in records or []]

    def append(self, record: dict[str, Any]) -> None:
        """Add one epoch's metrics (values converted to float/int)."""
        self.records.append({k: _scalar(v) for k, v in record.items()})

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list[float]:
        """The series of one metric across epochs (NaN where an epoch lacks it)."""
        return [r.get(key, math.nan) for r in self.records]

    @property
    def keys(self) -> list[str]:
        """Metric names in first-seen order."""
        names: dict[str, None] = {}
        for r in self.records:
            names.update(dict.fromkeys(r))
        return list(names)

    def to_dict(self) -> dict[str, list[float]]:
        """Column-oriented {metric: [value per epoch]}."""
        return {k: self[k] for k in self.keys}

    def save_csv(self, path: str | Path) -> None:
        """Write one header line and one row per epoch (atomically: a kill leaves the old file)."""
        keys = self.keys
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        for r in self.records:
            writer.writerow({k: r.get(k, "") for k in keys})
        write_text(path, text.getvalue())

    def save_json(self, path: str | Path) -> None:
        """Write the column-oriented dict (NaN written as null so the file is strict JSON)."""
        data = {k: [None if isinstance(v, float) and math.isnan(v) else v for v in vs]
                for k, vs in self.to_dict().items()}
        write_text(path, json.dumps(data, indent=2) + "\n")

    def save(self, directory: str | Path, stem: str = "history") -> None:
        """Write `<stem>.csv` and `<stem>.json` into `directory`."""
        d = Path(directory)
        self.save_csv(d / f"{stem}.csv")
        self.save_json(d / f"{stem}.json")

    @classmethod
    def load_json(cls, path: str | Path) -> History:
        """Read a file written by `save_json`."""
        data = json.loads(Path(path).read_text())
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"History.load_json: {path} holds metrics of different lengths {lengths} (a damaged "
                             f"file; `convolve train --resume` rewrites a run's histories from its last.npz)")
        n = max(lengths.values(), default=0)
        records = [{k: (math.nan if v[i] is None else v[i]) for k, v in data.items() if i < len(v)} for i in range(n)]
        return cls(records)

    def to_json_str(self) -> str:
        """The records as a JSON string (stored inside checkpoints)."""
        return json.dumps(self.records)

    @classmethod
    def from_json_str(cls, text: str) -> History:
        return cls(json.loads(text))


def _scalar(v: Any) -> float | int:
    """A plain Python number from a NumPy scalar, 0-d array or Tensor."""
    if isinstance(v, Tensor):
        v = v.data
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    return float(v)
