"""ONNX export of every functional op in isolation, over its options: exported, checked by onnx's full checker,
run in onnxruntime at the traced batch and another one (axis 0 dynamic), equal to convolve's output."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

import convolve as cv
import convolve.nn.functional as F
from convolve import nn
from convolve.onnx import ExportError, export

from .onnx_helpers import Fn, check_export


def _randomize(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial values in every parameter and buffer (running variances stay positive)."""
    rng = np.random.default_rng(seed)
    for name, t in model.state_dict().items():
        if t.dtype.kind == "f":
            values = rng.standard_normal(t.shape)
            t.data[...] = np.abs(values) + 0.5 if name.endswith("running_var") else values
    return model


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3), padding="same"),
    dict(kernel_size=3, dilation=2, padding=2), dict(kernel_size=3, groups=2, bias=False),
    dict(kernel_size=1, stride=(2, 1)), dict(kernel_size=3, padding=1, padding_mode="reflect"),
    dict(kernel_size=3, padding=2, padding_mode="replicate"), dict(kernel_size=3, padding=1, padding_mode="circular"),
    dict(kernel_size=3, groups=4),
])
def test_conv2d(kwargs: dict) -> None:
    check_export(_randomize(nn.Conv2d(4, 8, **kwargs)), [(2, 4, 9, 8)])


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=4, stride=2, padding=1, dilation=2)])
def test_conv1d(kwargs: dict) -> None:
    check_export(_randomize(nn.Conv1d(3, 5, **kwargs)), [(2, 3, 11)])


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), groups=2, bias=False), dict(kernel_size=3, dilation=2, padding=1),
])
def test_conv_transpose2d(kwargs: dict) -> None:
    check_export(_randomize(nn.ConvTranspose2d(4, 6, **kwargs)), [(2, 4, 5, 6)])


def test_conv_transpose1d() -> None:
    weight = cv.tensor(np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32))
    check_export(Fn(lambda x: F.conv_transpose1d(x, weight, stride=2, padding=1)), [(2, 3, 7)])


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(3, 2), dilation=(2, 1), ceil_mode=True),
    dict(kernel_size=2, stride=3, padding=1, ceil_mode=True),  # overhang past the kernel: explicit -inf Pad
])
def test_max_pool2d(kwargs: dict) -> None:
    check_export(nn.MaxPool2d(**kwargs), [(2, 3, 10, 11)])


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 3), stride=(3, 2), padding=(1, 1), divisor_override=5),
])
def test_avg_pool2d(kwargs: dict) -> None:
    check_export(nn.AvgPool2d(**kwargs), [(2, 3, 10, 11)])


def test_pool1d() -> None:
    check_export(Fn(lambda x: F.max_pool1d(x, 3, 2, ceil_mode=True) + F.avg_pool1d(x, 4, 2, 1, ceil_mode=True)),
                 [(2, 3, 10)])


@pytest.mark.parametrize("output_size", [1, (2, 3), (3, 4), (None, 2), (5, 5)])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pool2d(kind: str, output_size: object) -> None:
    pool = nn.AdaptiveAvgPool2d(output_size) if kind == "avg" else nn.AdaptiveMaxPool2d(output_size)
    check_export(pool, [(2, 3, 6, 8)])


def test_adaptive_pool1d_and_unbatched() -> None:
    check_export(Fn(lambda x: F.adaptive_avg_pool1d(x, 3) * F.adaptive_max_pool1d(x, 3)), [(2, 4, 7)])
    check_export(Fn(lambda x: F.adaptive_avg_pool2d(x, 1) + F.max_pool2d(x, 2)[..., :1, :1]), [(3, 4, 4)],
                 dynamic=False)


@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_eval(shape: tuple, affine: bool) -> None:
    bn = nn.BatchNorm2d(3, affine=affine) if len(shape) == 4 else nn.BatchNorm1d(3, affine=affine)
    check_export(_randomize(bn), [shape])


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(k: int, affine: bool) -> None:
    shape = (2, 3, 4, 5)
    rng = np.random.default_rng(0)
    w, b = (cv.tensor(rng.standard_normal(shape[-k:]).astype(np.float32)) if affine else None for _ in range(2))
    check_export(Fn(lambda x: F.layer_norm(x, shape[-k:], w, b, eps=1e-3)), [shape])


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_local_response_norm(size: int) -> None:
    check_export(nn.LocalResponseNorm(size, alpha=0.2, beta=0.75, k=2.0), [(2, 7, 3, 4)])


def test_local_response_norm_3d_even() -> None:
    check_export(Fn(lambda x: F.local_response_norm(x, 4, alpha=0.5)), [(2, 6, 5)])


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 5), (5,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(shape: tuple, bias: bool) -> None:
    check_export(_randomize(nn.Linear(5, 4, bias=bias)), [shape], dynamic=len(shape) > 1)


ACTIVATIONS = {
    "relu": lambda x: F.relu(x), "relu_inplace": lambda x: F.relu(x * 1.0, inplace=True) + x,
    "relu6": lambda x: F.relu6(x * 4), "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "elu": lambda x: F.elu(x, alpha=0.7), "sigmoid": F.sigmoid, "tanh": F.tanh, "silu": F.silu,
    "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "softmax": lambda x: F.softmax(x, dim=1), "log_softmax": lambda x: F.log_softmax(x, dim=-1),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation(name: str) -> None:
    check_export(Fn(ACTIVATIONS[name]), [(2, 3, 4, 5)])


@pytest.mark.parametrize("opset", [17, 20])
def test_gelu_both_opsets(opset: int) -> None:
    check_export(Fn(lambda x: F.gelu(x) + F.gelu(x, approximate="tanh")), [(2, 6)], opset=opset)


def test_dropout_is_identity_in_eval() -> None:
    model = nn.Sequential(nn.Dropout(0.5), nn.Dropout2d(0.3), nn.ReLU())
    export(model.train(), cv.randn(2, 3, 4, 4), io.BytesIO())
    assert model.training, "export must restore the model's mode"
    proto = check_export(model, [(2, 3, 4, 4)])
    assert [n.op_type for n in proto.graph.node] == ["Relu", "Identity"]


@pytest.mark.parametrize("mode,pads,value", [
    ("constant", (1, 2, 0, 3), 0.5), ("constant", (-1, 2, 1, -2), 0.0), ("reflect", (2, 1, 1, 2), None),
    ("replicate", (3, 0, 2, 1), None), ("circular", (2, 1, 0, 3), None), ("constant", (1, 1, 1, 1, 1, 0), -2.0),
])
@pytest.mark.parametrize("opset", [17, 19])
def test_pad(mode: str, pads: tuple, value: float | None, opset: int) -> None:
    check_export(Fn(lambda x: F.pad(x, pads, mode=mode, value=value)), [(2, 3, 5, 6)], opset=opset)


def test_pad_1d_modes() -> None:
    fn = Fn(lambda x: F.pad(x, (2, 1), "reflect") + F.pad(x, (1, 2), "circular") + F.pad(x, (3, 0), "replicate"))
    check_export(fn, [(2, 3, 6)])


TENSOR_OPS = {
    "arith": lambda x: (x + 1.5) * x - x / 3.0 - (-x),
    "pow_sqrt_abs": lambda x: x.abs().sqrt() + (x * x) ** 1.5,
    "exp_log": lambda x: (x.exp() + 1.0).log(),
    "clamp": lambda x: x.clamp(-0.5, 0.7) + x.clamp(min=0.1) + x.clamp(max=0.2),
    "maximum": lambda x: cv.maximum(x, x * 0.5),
    "matmul": lambda x: x @ x.transpose(-1, -2),
    "sum_mean_amax": lambda x: (x.sum(dim=1, keepdim=True) + x.mean(dim=(2, 3), keepdim=True)
                                + x.amax(dim=-1)[..., None]),
    "flatten_reshape": lambda x: F.flatten(x, 1).reshape(x.shape[0], 4, -1),
    "permute_expand": lambda x: x.permute(0, 2, 3, 1) + cv.ones(1, 1, 1, 3).expand(1, 4, 5, 3),
    "getitem": lambda x: x[:, 1:, ::2, -1] * 2 + x[:, None, 0, 1:3, ...][..., :2].sum(dim=1),
    "getitem_neg_step": lambda x: x[:, :, ::-2, 1:4],
    "cat_stack": lambda x: cv.cat([x, x * 2], dim=1) + cv.stack([x, x], dim=2).reshape(x.shape[0], 6, 4, 5),
    "cast": lambda x: x.double().float() + 1,
    "flatten_start0_scalar": lambda x: x.sum(),
}


@pytest.mark.parametrize("name", sorted(TENSOR_OPS))
def test_tensor_op(name: str) -> None:
    dynamic = name != "flatten_start0_scalar"
    check_export(Fn(TENSOR_OPS[name]), [(2, 3, 4, 5)], dynamic=dynamic)


# ----- errors and naming -------------------------------------------------------------------------------------
class _WithLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Linear(4, 3), Fn(lambda x: F.cross_entropy(x, cv.tensor([0, 1]))))

    def forward(self, x: cv.Tensor) -> cv.Tensor:
        return self.head(x)


def test_unsupported_op_names_module_and_op() -> None:
    with pytest.raises(ExportError, match=r"CrossEntropyFunction in module 'head\.1' \(Fn\)"):
        export(_WithLoss(), cv.randn(2, 4), io.BytesIO())


def test_training_dropout_and_indices_refused() -> None:
    with pytest.raises(ExportError, match=r"DropoutFunction in module 'drop'.*training mode"):
        model = nn.Sequential()
        model.add_module("drop", Fn(lambda x: F.dropout(x, 0.5, training=True)))
        export(model, cv.randn(2, 4), io.BytesIO())
    with pytest.raises(ExportError, match=r"MaxPool2dFunction.*return_indices"):
        export(Fn(lambda x: F.max_pool2d(x, 2, return_indices=True)[0]), cv.randn(1, 1, 4, 4), io.BytesIO())


def test_constant_of_the_batch_size_follows_the_dynamic_batch() -> None:
    check_export(Fn(lambda x: cv.cat([cv.zeros(x.shape[0], 2, 3), x, cv.ones(x.shape[0], 1, 3)], dim=1)),
                 [(2, 4, 3)])
    with pytest.raises(ExportError, match="different rows"):
        export(Fn(lambda x: x + cv.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))), cv.randn(2, 3),
               io.BytesIO(), dynamic_axes={"input": [0]})


def test_reshape_that_merges_the_dynamic_batch_is_refused() -> None:
    model = Fn(lambda x: x.reshape(-1))
    with pytest.raises(ExportError, match=r"reshape from \(2, 3\) to \(6,\) merges or moves the dynamic batch"):
        export(model, cv.randn(2, 3), io.BytesIO(), dynamic_axes={"input": [0]})
    export(model, cv.randn(2, 3), io.BytesIO())  # static shapes: fine


def test_bad_arguments() -> None:
    model = nn.ReLU()
    with pytest.raises(ValueError, match="opset_version"):
        export(model, cv.randn(1, 2), io.BytesIO(), opset_version=9)
    with pytest.raises(ValueError, match="only axis 0"):
        export(model, cv.randn(1, 2), io.BytesIO(), dynamic_axes={"input": {1: "w"}})
    with pytest.raises(ValueError, match="not an input or output name"):
        export(model, cv.randn(1, 2), io.BytesIO(), dynamic_axes={"x": [0]})
    with pytest.raises(TypeError, match="args"):
        export(model, [1, 2], io.BytesIO())


def test_initializers_are_named_by_state_dict_keys(tmp_path) -> None:
    import onnx

    model = _randomize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(8, 3)))
    path = tmp_path / "m.onnx"
    export(model, cv.randn(1, 1, 4, 4), path, input_names=["image"], output_names=["logits"],
           dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
    proto = onnx.load(str(path))
    names = {i.name for i in proto.graph.initializer}
    keys = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert keys <= names, f"missing initializers {keys - names}"
    for init in proto.graph.initializer:
        if init.name in keys:
            np.testing.assert_array_equal(onnx.numpy_helper.to_array(init), model.state_dict()[init.name].numpy())
    assert [i.name for i in proto.graph.input] == ["image"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert [n.op_type for n in proto.graph.node] == ["Conv", "BatchNormalization", "Relu", "Flatten", "Gemm",
                                                     "Identity"]
    assert proto.graph.node[0].name == "/0/Conv"
