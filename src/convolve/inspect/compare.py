"""`compare()`: the parameters and MACs of several models side by side, each row's difference to the row above.

Made for ablation ladders (GoogLeNet -> Inception-v2 -> each architectural step -> Inception-v3): one `summary()`
per model, in eval mode, so the MACs are those of inference (auxiliary heads are not run) while the parameter
counts include every head the model holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from convolve import nn
from convolve.inspect.summary import summary

HEADERS = ("model", "input", "params", "Δ params", "MACs", "Δ MACs", "MACs / first")


@dataclass(frozen=True)
class ComparisonRow:
    """One model of a comparison: its label, input size (C, H, W), parameters and MACs for one image."""

    label: str
    input_size: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelComparison:
    """The rows of `compare()`; `str()` is a Markdown table (differences to the previous row)."""

    rows: tuple[ComparisonRow, ...]

    def __str__(self) -> str:
        lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * 2 + "---:|" * (len(HEADERS) - 2)]
        previous: ComparisonRow | None = None
        for row in self.rows:
            d_params = f"{row.params - previous.params:+,}" if previous else ""
            d_macs = f"{row.macs - previous.macs:+,}" if previous else ""
            ratio = f"{row.macs / self.rows[0].macs:.2f}x" if self.rows[0].macs else ""
            cells = (f"`{row.label}`", "x".join(map(str, row.input_size)), f"{row.params:,}", d_params,
                     f"{row.macs:,}", d_macs, ratio)
            lines.append("| " + " | ".join(cells) + " |")
            previous = row
        return "\n".join(lines)


def compare(models: Sequence[tuple[str, nn.Module]], input_size: Sequence[int] | None = None) -> ModelComparison:
    """Parameters and MACs of each `(label, model)`, at `input_size` or else each model's own `input_size`."""
    if isinstance(models, str | bytes) or not isinstance(models, Sequence) or not models:
        raise ValueError(f"compare: `models` must be a non-empty sequence of (label, model) pairs, got {models!r}")
    rows = []
    for i, pair in enumerate(models):
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise TypeError(f"compare: `models[{i}]` must be a (label, model) pair, got {pair!r}")
        label, model = pair
        s = summary(model, input_size)
        rows.append(ComparisonRow(label, s.input_shape[1:], s.total_params, s.total_macs // s.input_shape[0]))
    return ModelComparison(tuple(rows))
