"""ONNX export (`convolve.onnx.export`, as `torch.onnx.export`): trace the forward, emit standard operators.

Needs the optional `onnx` package (`pip install "convolve[onnx]"`; onnxruntime runs the result).
"""

from convolve.onnx.export import build_model, export
from convolve.onnx.graph import ExportError

__all__ = ["ExportError", "build_model", "export"]
