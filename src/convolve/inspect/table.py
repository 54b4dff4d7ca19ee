"""What `summary()` records (`LayerRow`, `ModelSummary`) and its text table (`print(summary(...))`,
`convolve summary MODEL`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from convolve.inspect.geometry import AxisField

Fields = tuple[AxisField, ...]  # one per spatial axis (H, W)


@dataclass(frozen=True)
class LayerRow:
    """What one call of one leaf layer did in the recorded forward pass (shapes include the batch)."""

    name: str
    type: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]  # recorded by the forward hook
    claimed_shape: tuple[int, ...] | None  # predicted from the layer's arguments (None: no rule for it)
    params: int  # counted on a module's first call only (re-used modules, e.g. a block's ReLU, show 0 after)
    trainable: int
    unshared_params: int  # a locally connected layer of the same geometry (conv); = params otherwise
    macs: int  # multiply-accumulates for the whole batch
    flops: int  # 2 x macs
    activation_bytes: int  # output elements x itemsize, whole batch
    receptive_field: Fields | None  # per spatial axis; None when the input's field is unknown
    call: int = 1  # 1, 2, ... for repeated calls of the same module


@dataclass
class ModelSummary:
    """Rows and totals of `summary()`; `str()` is the printed table."""

    model: str
    input_shape: tuple[int, ...]  # (N, C, H, W) fed to the model
    dtype: str
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    total_macs: int
    total_flops: int
    activation_bytes: int  # sum of the layers' outputs
    input_bytes: int
    param_bytes: int
    output: Any = field(default=None, repr=False, compare=False)  # the model's output (graph kept for backward)

    @property
    def activation_elements(self) -> int:
        """Sum of the layers' output elements (whole batch)."""
        return sum(int(np.prod(r.output_shape)) for r in self.rows)

    def as_dicts(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (for JSON/CSV export)."""
        return [asdict(r) for r in self.rows]

    def __str__(self) -> str:
        return format_summary(self)


HEADERS = ("Layer", "Type", "Output shape", "Params", "Unshared", "MACs", "FLOPs", "Memory", "RF", "Jump", "Start")


def human_bytes(n: float) -> str:
    """Bytes with a binary unit: 1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def human_count(n: float) -> str:
    """A large count with a decimal unit: 1_234_000_000 -> '1.23 G'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def _axes(values: tuple[Any, ...]) -> str:
    """'11' when every axis agrees, else '7x1'; floats with at most two decimals."""
    text = [f"{v:g}" if isinstance(v, int) else f"{v:.2f}".rstrip("0").rstrip(".") for v in values]
    return text[0] if len(set(text)) == 1 else "x".join(text)


def _field_cells(fields: tuple[AxisField, ...] | None) -> tuple[str, str, str]:
    if fields is None:
        return "?", "?", "?"
    return (_axes(tuple(f.size for f in fields)), _axes(tuple(f.jump for f in fields)),
            _axes(tuple(f.start for f in fields)))


def _row_cells(r: LayerRow) -> tuple[str, ...]:
    shape = "x".join(str(n) for n in r.output_shape)
    if r.claimed_shape is not None and r.claimed_shape != r.output_shape:
        shape += " (claimed " + "x".join(str(n) for n in r.claimed_shape) + "!)"
    name = r.name if r.call == 1 else f"{r.name} #{r.call}"
    return (name, r.type, shape, f"{r.params:,}", f"{r.unshared_params:,}", f"{r.macs:,}", f"{r.flops:,}",
            human_bytes(r.activation_bytes), *_field_cells(r.receptive_field))


def format_summary(s: ModelSummary) -> str:
    """The per-layer table followed by the totals."""
    cells = [HEADERS, *(_row_cells(r) for r in s.rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    left = {0, 1, 2}

    def line(c: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths)))

    rule = "-" * len(line(HEADERS))
    out = [f"{s.model}: input {'x'.join(map(str, s.input_shape))} ({s.dtype})", rule, line(HEADERS), rule]
    out += [line(c) for c in cells[1:]]
    total_bytes = s.input_bytes + s.activation_bytes + s.param_bytes
    out += [
        rule,
        f"Total params: {s.total_params:,}",
        f"Trainable params: {s.trainable_params:,}",
        f"Non-trainable params: {s.total_params - s.trainable_params:,}",
        f"MACs: {s.total_macs:,} ({human_count(s.total_macs)}MAC)",
        f"FLOPs (2 x MACs): {s.total_flops:,} ({human_count(s.total_flops)}FLOP)",
        f"Input: {human_bytes(s.input_bytes)}",
        f"Forward activations (layer outputs): {s.activation_elements:,} values, {human_bytes(s.activation_bytes)}",
        f"Parameters: {human_bytes(s.param_bytes)}",
        f"Estimated total: {human_bytes(total_bytes)}",
        "RF: receptive field size in input pixels; Jump: input pixels between neighbouring units; "
        "Start: centre of the first unit's field",
    ]
    return "\n".join(out)
