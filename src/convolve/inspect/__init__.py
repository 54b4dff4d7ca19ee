"""Look inside a model: per-layer shapes, parameters (shared and unshared), MACs/FLOPs, memory, receptive fields.

`summary(model, input_size)` runs one forward pass with hooks and returns a `ModelSummary` (rows + totals;
`print()` it for the table); `geometry` holds the arithmetic (output sizes, receptive-field composition,
im2col shapes) usable without a model; `compare([(label, model), ...])` puts the totals of several models side
by side with their differences (an ablation ladder); `explain(layer, input_size)` / `explain_layer(model, name)`
work out one convolution's or pooling's arithmetic as a lecture would (print the result).
"""

from convolve.inspect.compare import ComparisonRow, ModelComparison, compare
from convolve.inspect.explain import AxisArithmetic, LayerExplanation, explain, explain_layer
from convolve.inspect.geometry import (
    INPUT_FIELD,
    AxisField,
    Im2colShapes,
    Window,
    compose,
    im2col_shapes,
    infer_output_shape,
    module_costs,
    module_windows,
    output_size,
)
from convolve.inspect.summary import LayerRow, ModelSummary, print_summary, summary
from convolve.inspect.table import format_summary

__all__ = [
    "INPUT_FIELD",
    "AxisArithmetic",
    "AxisField",
    "ComparisonRow",
    "Im2colShapes",
    "LayerExplanation",
    "LayerRow",
    "ModelComparison",
    "ModelSummary",
    "Window",
    "compare",
    "compose",
    "explain",
    "explain_layer",
    "format_summary",
    "im2col_shapes",
    "infer_output_shape",
    "module_costs",
    "module_windows",
    "output_size",
    "print_summary",
    "summary",
]
