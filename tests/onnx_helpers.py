"""Export a convolve module to ONNX, run it in onnxruntime, compare with convolve's eval output."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import convolve as cv
from convolve import nn

DYNAMIC = {"input": {0: "batch"}, "output": {0: "batch"}}


class Fn(nn.Module):
    """A module whose forward is `fn(x)` (to export one functional op in isolation)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *xs: Any) -> Any:
        return self.fn(*xs)


def export_bytes(model: Any, args: Any, **kwargs: Any) -> bytes:
    from convolve.onnx import export

    buf = io.BytesIO()
    export(model, args, buf, **kwargs)
    return buf.getvalue()


def session(onnx_model: bytes | str) -> Any:
    """An onnxruntime session (one thread, no weight prepacking) of a serialized model or a file path."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.disable_prepacking", "1")  # big weights load faster
    return ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


def assert_scaled_close(ours: np.ndarray, ref: np.ndarray, what: str, rtol: float = 1e-4) -> None:
    """|ours - ref| <= rtol * max|ref| elementwise (float32: relative to the output's scale), same shape."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: onnxruntime shape {ours.shape} != convolve {ref.shape}"
    if ref.dtype.kind != "f":
        np.testing.assert_array_equal(ours, ref, err_msg=what)
        return
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(ours), finite, err_msg=f"{what}: non-finite positions differ")
    scale = max(float(np.abs(ref[finite]).max(initial=0.0)), 1e-30)
    err = float(np.abs(ours[finite].astype(np.float64) - ref[finite]).max(initial=0.0))
    assert err <= rtol * scale, f"{what}: max abs error {err:.3g} > {rtol} x output scale {scale:.3g}"
    np.testing.assert_array_equal(ours[~finite], ref[~finite], err_msg=f"{what}: infinities differ")


def check_export(model: Any, shapes: Sequence[tuple[int, ...]], *, batch_other: int | None = 3, opset: int = 17,
                 seed: int = 0, dynamic: bool = True) -> Any:
    """Export `model` traced on random inputs of `shapes` (float32), run onnxruntime at that batch and at
    `batch_other` (axis 0 dynamic), compare with convolve. Returns the exported bytes' ModelProto."""
    import onnx

    rng = np.random.default_rng(seed)
    model.eval()
    inputs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    names = ["input"] if len(shapes) == 1 else [f"input_{i}" for i in range(len(shapes))]
    dyn = {n: {0: "batch"} for n in names} if dynamic else None
    data = export_bytes(model, tuple(cv.tensor(a) for a in inputs), opset_version=opset, input_names=names,
                        output_names=["output"], dynamic_axes={**dyn, "output": {0: "batch"}} if dyn else None)
    sess = session(data)
    batches = [inputs]
    if dynamic and batch_other is not None:
        batches.append([rng.standard_normal((batch_other, *s[1:])).astype(np.float32) for s in shapes])
    for arrays in batches:
        with cv.no_grad():
            ref = model(*[cv.tensor(a) for a in arrays]).numpy()
        (got,) = sess.run(None, dict(zip(names, arrays)))
        assert_scaled_close(got, ref, f"batch {arrays[0].shape[0]}")
    return onnx.load_from_string(data)
