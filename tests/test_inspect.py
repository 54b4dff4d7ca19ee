"""convolve.inspect: output-size and receptive-field arithmetic, per-layer costs, and summary() itself.

Receptive fields are checked against a measurement: the input pixels whose gradient is non-zero for one output
unit (positive weights and average pooling, so nothing cancels) must be exactly the field the summary claims."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
from convolve import nn
from convolve.inspect import (
    AxisField,
    Window,
    compose,
    im2col_shapes,
    infer_output_shape,
    module_costs,
    output_size,
    print_summary,
    summary,
)

SETTINGS = settings(max_examples=30, deadline=None)


# ----- arithmetic ---------------------------------------------------------------------------------------------
@SETTINGS
@given(n=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 4), p=st.integers(0, 2), d=st.integers(1, 3),
       ceil=st.booleans())
def test_output_size_matches_torch_pooling(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> None:
    if 2 * p > k:
        return  # torch's pooling rejects the padding itself
    try:
        expected = torch.nn.functional.max_pool2d(torch.zeros(1, 1, n, n), k, s, p, d, ceil_mode=ceil).shape[-1]
    except RuntimeError:  # the window does not fit
        with pytest.raises(ValueError, match="output_size: the dilated kernel"):
            output_size(n, k, s, p, d, ceil_mode=ceil)
        return
    assert output_size(n, k, s, p, d, ceil_mode=ceil) == expected


def test_output_size_errors_and_lecture_cases() -> None:
    assert output_size(7, 3, 1) == 5 and output_size(7, 3, 2) == 3
    assert output_size(227, 11, 4) == 55
    with pytest.raises(ValueError, match=r"output_size: the dilated kernel \(5\) is larger than the padded input"):
        output_size(4, 3, dilation=2)


def test_field_composition() -> None:
    assert compose([Window(3)] * 2).size == 5 and compose([Window(3)] * 3).size == 7
    assert compose([Window(3, dilation=2)]).size == 5
    f = compose([Window(11, 4), Window(3, 2)])  # AlexNet conv1 + pool1
    assert (f.size, f.jump, f.start) == (19, 8, 9.5)
    padded = compose([Window(3, 1, 1)])
    assert padded.start == 0.5  # a 'same' conv keeps the first unit centred on pixel 0
    assert AxisField.merge([AxisField(3, 1, 0.5), AxisField(7, 1, 0.5), AxisField(5, 1, 0.5)]).size == 7
    assert AxisField(5, 2, 2.5).covering(4) == AxisField(11, 8, 5.5)


def test_im2col_shapes() -> None:
    shp = im2col_shapes(3, (227, 227), (11, 11), 96, stride=4)
    assert shp.columns == (363, 3025) and shp.weights == (96, 363) and shp.output == (96, 3025)


# ----- claimed shapes --------------------------------------------------------------------------------------------
LAYERS = st.sampled_from(["conv", "conv_same", "conv1d", "maxpool", "avgpool", "adaptive", "transposed"])


def _layer(kind: str, c: int, k: int, s: int, p: int, d: int, g: int, ceil: bool) -> nn.Module:
    if kind == "conv":
        return nn.Conv2d(c * g, 2 * g, k, stride=s, padding=p, dilation=d, groups=g)
    if kind == "conv_same":
        return nn.Conv2d(c, 3, k, padding="same", dilation=d)
    if kind == "conv1d":
        return nn.Conv1d(c, 2, k, stride=s, padding=p, dilation=d)
    if kind == "maxpool":
        return nn.MaxPool2d(k, s, min(p, k // 2), ceil_mode=ceil)
    if kind == "avgpool":
        return nn.AvgPool2d(k, s, min(p, k // 2), ceil_mode=ceil)
    if kind == "adaptive":
        return nn.AdaptiveAvgPool2d((k, None))
    return nn.ConvTranspose2d(c, 2, k, stride=s, padding=min(p, k - 1), output_padding=s - 1, dilation=1)


@SETTINGS
@given(kind=LAYERS, n=st.integers(1, 12), c=st.integers(1, 3), k=st.integers(1, 4), s=st.integers(1, 3),
       p=st.integers(0, 2), d=st.integers(1, 2), g=st.integers(1, 2), ceil=st.booleans(), batch=st.integers(1, 2))
def test_claimed_shape_is_the_real_one(kind: str, n: int, c: int, k: int, s: int, p: int, d: int, g: int,
                                       ceil: bool, batch: int) -> None:
    layer = _layer(kind, c, k, s, p, d, g, ceil)
    channels = layer.in_channels if hasattr(layer, "in_channels") else c
    shape = (batch, channels, n) if kind == "conv1d" else (batch, channels, n, n + 1)
    try:
        out = layer(cv.randn(*shape))
    except ValueError:  # a setting the layer rejects (kernel larger than the input, ...)
        return
    assert infer_output_shape(layer, shape) == out.shape


def test_claimed_shapes_of_shape_only_layers() -> None:
    assert infer_output_shape(nn.Flatten(), (2, 3, 4, 5)) == (2, 60)
    assert infer_output_shape(nn.Flatten(0, 1), (2, 3, 4)) == (6, 4)
    assert infer_output_shape(nn.Linear(5, 7), (2, 3, 5)) == (2, 3, 7)
    assert infer_output_shape(nn.BatchNorm2d(3), (2, 3, 4, 4)) == (2, 3, 4, 4)
    assert infer_output_shape(Doubler(), (1, 2)) is None


# ----- costs -------------------------------------------------------------------------------------------------------
def test_costs_of_conv_linear_transposed() -> None:
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2)  # 6 filters of 2x3x3
    macs, unshared = module_costs(conv, (2, 4, 5, 5), (2, 6, 5, 5))
    assert macs == 2 * 25 * 6 * 2 * 9 and unshared == 25 * 6 * (2 * 9 + 1)
    assert module_costs(nn.Conv2d(4, 6, 3, bias=False), (1, 4, 5, 5), (1, 6, 3, 3))[1] == 9 * 6 * 4 * 9
    assert module_costs(nn.Linear(5, 7), (3, 5), (3, 7)) == (3 * 35, 42)
    assert module_costs(nn.ConvTranspose2d(2, 3, 2, stride=2), (1, 2, 4, 4), (1, 3, 8, 8))[0] == 16 * 2 * 3 * 4
    assert module_costs(nn.BatchNorm2d(3), (1, 3, 4, 4), (1, 3, 4, 4)) == (0, 6)


# ----- summary --------------------------------------------------------------------------------------------------
class Doubler(nn.Module):
    """A leaf without a shape rule: its row claims nothing, but its field is carried through the graph."""

    def forward(self, x: cv.Tensor) -> cv.Tensor:
        return x * 2


class Branchy(nn.Module):
    """Inception-like: 1x1 | 3x3 | 3x3 -> 3x3 (sees 5x5) | 3x3/1 avg pool -> 1x1, concatenated by cv.cat."""

    def __init__(self) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(1, 1, 1)
        self.b3 = nn.Conv2d(1, 1, 3, padding=1)
        self.b5 = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1))
        self.pool = nn.Sequential(nn.AvgPool2d(3, 1, 1), nn.Conv2d(1, 1, 1))
        self.mix = nn.Conv2d(4, 1, 1)

    def forward(self, x: cv.Tensor) -> cv.Tensor:
        return self.mix(cv.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], dim=1))


class Residual(nn.Module):
    """relu(conv(relu(conv(x))) + x) after a strided stem: the field is the longer path's."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, stride=2)
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: cv.Tensor) -> cv.Tensor:
        x = self.stem(x)
        return self.relu(self.conv2(self.relu(self.conv1(x))) + x)


def plain_stack() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, stride=2),
                         nn.AvgPool2d(2), nn.Conv2d(2, 1, 3, dilation=2, padding=1), Doubler())


def positive(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.data[...] = np.abs(p.data) + 0.1
    return model.double()


def measured_support(model: nn.Module, n: int, i: int, j: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """[first, last] input rows and columns with a non-zero gradient of output unit (i, j) of channel 0."""
    x = cv.tensor(np.random.default_rng(0).random((1, 1, n, n)) + 1, requires_grad=True)
    out = model(x)
    grad = np.zeros(out.shape)
    grad[0, 0, i, j] = 1
    out.backward(cv.tensor(grad))
    rows, cols = np.nonzero(x.grad.numpy()[0, 0])
    return (rows.min(), rows.max()), (cols.min(), cols.max())


@pytest.mark.parametrize(("make", "n", "unit", "size"), [(plain_stack, 40, (3, 4), 23), (Branchy, 16, (7, 8), 5),
                                                         (Residual, 21, (4, 5), 11)])
def test_receptive_field_is_the_measured_one(make, n: int, unit: tuple[int, int], size: int) -> None:
    model = positive(make())
    s = summary(model, (1, n, n))
    field = s.rows[-1].receptive_field
    assert field is not None and field[0].size == field[1].size == size  # hand-checked in test_hand_computed_fields
    for axis, (pos, f) in enumerate(zip(unit, field)):
        centre = f.start + pos * f.jump
        first, last = centre - f.size / 2, centre + f.size / 2 - 1  # pixel i covers [i, i+1)
        assert measured_support(model, n, *unit)[axis] == (first, last)


def test_hand_computed_fields() -> None:
    """Plain stack: 3 -> +2*1 (3x3/2) = 5, jump 2 -> pool 2: +1*2 = 7, jump 4 -> dilated 3x3: +2*2*4 = 23."""
    rows = summary(plain_stack(), (1, 40, 40)).rows
    assert [r.receptive_field[0].size for r in rows] == [3, 3, 5, 7, 23, 23]
    assert [r.receptive_field[0].jump for r in rows] == [1, 1, 2, 4, 4, 4]
    branchy = {r.name: r.receptive_field[0].size for r in summary(Branchy(), (1, 8, 8)).rows}
    assert branchy == {"b1": 1, "b3": 3, "b5.0": 3, "b5.1": 5, "pool.0": 3, "pool.1": 3, "mix": 5}


def test_summary_rows_and_totals() -> None:
    model = Residual()
    s = summary(model, (1, 9, 9), batch_size=2)
    assert [r.name for r in s.rows] == ["stem", "conv1", "relu", "conv2", "relu"]
    assert [r.call for r in s.rows] == [1, 1, 1, 1, 2]
    assert s.total_params == sum(r.params for r in s.rows) == 2 * 9 + 2 + 2 * (2 * 2 * 9 + 2) == 96
    assert s.rows[0].output_shape == (2, 2, 4, 4) and s.input_shape == (2, 1, 9, 9)
    assert s.total_macs == sum(r.macs for r in s.rows) == 2 * 16 * (18 + 36 + 36)
    assert s.total_flops == 2 * s.total_macs
    assert s.activation_bytes == 5 * 2 * 2 * 16 * 4 and s.input_bytes == 2 * 81 * 4
    assert s.activation_elements == 5 * 64
    assert s.as_dicts()[0]["name"] == "stem"
    text = str(s)
    for piece in ("Layer", "Unshared", "MACs", "FLOPs", "relu #2", "Total params: 96", "FLOPs (2 x MACs)"):
        assert piece in text
    buf = io.StringIO()
    assert print_summary(model, (1, 9, 9), file=buf).total_params == 96
    assert buf.getvalue().startswith("Residual: input 1x1x9x9 (float32)")


def test_summary_of_a_single_layer_and_modes() -> None:
    conv = nn.Conv2d(3, 4, 3)
    row = summary(conv, (3, 6, 6)).rows[0]
    assert row.name == "Conv2d" and row.output_shape == (1, 4, 4, 4)
    model = nn.Sequential(nn.Linear(3, 2), nn.Dropout())
    model.train()
    assert summary(model, (3,)).rows[1].receptive_field is None  # no spatial axes, nothing to report
    assert model.training  # the mode is restored
    model.eval()
    summary(model, (3,), mode="train")
    assert not model.training
    assert summary(nn.Conv2d(1, 1, 1).double(), (1, 2, 2)).dtype == "float64"


def test_summary_of_1d_layers_and_under_no_grad() -> None:
    model = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.MaxPool1d(2), nn.Conv1d(3, 1, 3, dilation=2))
    rows = summary(model, (2, 16)).rows
    assert [r.output_shape for r in rows] == [(1, 3, 16), (1, 3, 8), (1, 1, 4)]
    assert [r.claimed_shape for r in rows] == [r.output_shape for r in rows]
    assert [(r.receptive_field[0].size, r.receptive_field[0].jump) for r in rows] == [(3, 1), (4, 2), (12, 2)]
    with cv.no_grad():  # the graph that carries the fields is recorded anyway
        assert summary(Branchy(), (1, 8, 8)).rows[-1].receptive_field[0].size == 5


class FromParameters(nn.Module):
    """A layer fed by a tensor computed from parameters only: it has no receptive field ('?' in the table)."""

    def __init__(self) -> None:
        super().__init__()
        self.pattern = nn.Parameter(cv.ones(1, 1, 4, 4))
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.head = nn.Conv2d(1, 1, 1)

    def forward(self, x: cv.Tensor) -> cv.Tensor:
        return self.head(x + self.conv(self.pattern * 2))


def test_layers_without_a_field() -> None:
    s = summary(FromParameters(), (1, 4, 4))
    assert s.rows[0].name == "conv" and s.rows[0].receptive_field is None
    assert s.rows[1].receptive_field[0].size == 1  # the input's field, through the addition
    assert str(s).splitlines()[4].split()[-3:] == ["?", "?", "?"]


def test_summary_errors() -> None:
    with pytest.raises(TypeError, match=r"summary: `model` must be a convolve\.nn\.Module, got function"):
        summary(lambda x: x, (1, 2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="summary: `input_size` is required: Conv2d has no `input_size` attribute"):
        summary(nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match=r"summary: `input_size` must be \(C, H, W\), \(C, L\) or \(F,\) positive"):
        summary(nn.Conv2d(1, 1, 1), (1, 0, 3))
    with pytest.raises(ValueError, match="summary: `batch_size` must be a positive int, got 0"):
        summary(nn.Conv2d(1, 1, 1), (1, 2, 2), batch_size=0)
    with pytest.raises(ValueError, match="summary: `mode` must be 'eval' or 'train', got 'test'"):
        summary(nn.Conv2d(1, 1, 1), (1, 2, 2), mode="test")
    with pytest.raises(ValueError, match=r"summary: `dtype` is float64 but the model's parameters are float32"):
        summary(nn.Conv2d(1, 1, 1), (1, 2, 2), dtype=np.float64)
    with pytest.raises(TypeError, match="summary: `dtype` must be a floating dtype, got int64"):
        summary(nn.Conv2d(1, 1, 1), (1, 2, 2), dtype=np.int64)
