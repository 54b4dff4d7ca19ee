"""Every zoo model, at its native input size, exported to ONNX (batch axis dynamic) and run in onnxruntime:
the output equals convolve's eval output (float32, 1e-4 of the output's scale). One forward per model, batch 1;
onnxruntime also runs a batch of 2 copies, which must give the same row twice. The models above 30M parameters
(AlexNet, ZFNet, VGG) are not re-parsed for the initializer-name check, which the smaller ones make."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

import convolve as cv
from convolve.models import get_model, list_models, model_spec
from convolve.onnx import export

from .onnx_helpers import DYNAMIC, assert_scaled_close, session

BIG = 30_000_000  # parameters; above this the exported file is not parsed again (hundreds of MB per copy)


@pytest.mark.parametrize("name", list_models())
def test_zoo_model_runs_in_onnxruntime(name: str, tmp_path) -> None:
    import onnx

    spec = model_spec(name)
    cv.manual_seed(0)
    model = get_model(name).eval()
    x = np.random.default_rng(0).standard_normal((1, *spec.input_size)).astype(np.float32)
    seen = []  # convolve's output of the traced forward itself: one forward per model
    path = tmp_path / f"{name}.onnx"
    with model.register_forward_hook(lambda module, args, output: seen.append(output.numpy())):
        export(model, cv.tensor(x), path, dynamic_axes=DYNAMIC)
    (ref,) = seen  # (1, classes)

    (got,) = session(str(path)).run(None, {"input": np.concatenate([x, x])})
    assert_scaled_close(got[:1], ref, f"{name} (row 1)")
    assert_scaled_close(got[1:], ref, f"{name} (row 2 of a batch of 2)")

    if sum(p.numel() for p in model.parameters()) > BIG:  # the naming is the same code path as below
        return
    graph = onnx.load(str(path)).graph
    weights = {i.name for i in graph.initializer if "/" not in i.name}  # constants are named after their node
    keys = set(model.state_dict())
    assert weights <= keys, f"initializers not named by state_dict keys: {sorted(weights - keys)[:5]}"
    used = {k for k, _ in model.named_parameters() if "aux" not in k.lower()}
    assert used <= weights, f"parameters missing from the graph: {sorted(used - weights)[:5]}"
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
