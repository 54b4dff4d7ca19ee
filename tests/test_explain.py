"""`convolve.inspect.explain` and `convolve explain`: the lecture's numbers, and every number equal to what the
real layer (and PyTorch's) produces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve as cv
from convolve import inspect, models, nn
from convolve.cli import main
from convolve.inspect.geometry import module_costs


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_alexnet_conv1_lecture_numbers():
    e = inspect.explain("conv2d", (3, 227, 227), out_channels=96, kernel_size=11, stride=4, padding=0)
    assert e.output_shape == (96, 55, 55) and e.output_elements == 290_400
    assert e.weights_per_filter == 363 and e.weights == 34_848 and e.params == 34_944
    assert e.unshared_params == 105_705_600
    assert e.im2col == ((363, 3025), (96, 363), (96, 3025))
    assert e.macs == 290_400 * 363 and e.flops == 2 * e.macs
    assert [(f.size, f.jump) for f in e.receptive_field] == [(11, 4), (11, 4)]
    text = str(e)
    for needle in ("(227 + 2x0 - 1x(11-1) - 1) / 4 + 1 = 216 / 4 + 1 = 55", "34,944 parameters",
                   "290,400 neurons x 364 = 105,705,600", "columns 363 x 3,025", "FLOPs: 2 x MACs = 210,830,400"):
        assert needle in text, needle


def test_lecture_settings_output_sizes():
    assert inspect.explain("conv2d", (1, 7, 7), out_channels=1, kernel_size=3).output_shape == (1, 5, 5)
    assert inspect.explain("conv2d", (1, 7, 7), out_channels=1, kernel_size=3, stride=2).output_shape == (1, 3, 3)
    assert inspect.explain("conv2d", (4, 11, 11), out_channels=1, kernel_size=5, stride=2).output_shape == (1, 4, 4)
    e = inspect.explain("conv2d", (3, 5, 5), out_channels=2, kernel_size=3, stride=2, padding=1)
    assert e.output_shape == (2, 3, 3)
    pool = inspect.explain("max_pool2d", (64, 224, 224), kernel_size=2, stride=2)
    assert pool.output_shape == (64, 112, 112) and pool.params == 0
    assert "75.0% are discarded" in str(pool)
    dilated = inspect.explain("conv2d", (1, 9, 9), out_channels=1, kernel_size=3, dilation=2)
    assert dilated.receptive_field[0].size == 5 and "2x(3-1)+1 = 5" in str(dilated)


def test_non_integer_setting_is_explained_and_floored_like_pytorch():
    e = inspect.explain("conv2d", (1, 10, 10), out_channels=1, kernel_size=3, stride=2)
    a = e.axes[0]
    assert float(a.quotient) == 4.5 and not a.exact and a.output == 4 and a.unused == 1
    text = str(e)
    assert "= 4.5 -> floor -> 4" in text and "4.5 is not an integer" in text and "round down to 4" in text
    torch_out = torch.nn.functional.conv2d(torch.zeros(1, 1, 10, 10), torch.zeros(1, 1, 3, 3), stride=2)
    assert tuple(torch_out.shape[1:]) == e.output_shape
    p = inspect.explain("max_pool2d", (1, 10, 10), kernel_size=3, stride=2, ceil_mode=True)
    assert p.output_shape == (1, 5, 5) and p.axes[0].overhang == 1 and "ceil -> 5" in str(p)


def _real(module, size):
    y = module(cv.tensor(np.zeros((1, *size), np.float32)))
    return tuple(y.shape[1:])


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=25, deadline=None)
@given(st.data())
def test_conv_numbers_equal_the_layer(data):
    """Output shape = the layer's forward = PyTorch's; parameters = the layer's tensors; MACs = geometry's."""
    k = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    d = data.draw(st.integers(1, 2))
    s = data.draw(st.integers(1, 3))
    groups = data.draw(st.sampled_from([1, 2]))
    c, out_c = 2 * data.draw(st.integers(1, 2)), 2 * data.draw(st.integers(1, 2))
    pad = data.draw(st.sampled_from([0, 1, 2, "same", "valid"]) if s == 1 else st.integers(0, 2))
    mode = data.draw(st.sampled_from(["zeros", "reflect"])) if pad in (0, 1) else "zeros"
    h, w = data.draw(st.integers(d * (k[0] - 1) + 3, 12)), data.draw(st.integers(d * (k[1] - 1) + 3, 12))
    bias = data.draw(st.booleans())
    layer = nn.Conv2d(c, out_c, k, stride=s, padding=pad, dilation=d, groups=groups, bias=bias, padding_mode=mode)
    e = inspect.explain(layer, (c, h, w))
    assert e.output_shape == _real(layer, (c, h, w))
    ref = torch.nn.Conv2d(c, out_c, k, stride=s, padding=pad, dilation=d, groups=groups, bias=bias,
                          padding_mode=mode)
    assert e.output_shape == tuple(ref(torch.zeros(1, c, h, w)).shape[1:])
    assert e.params == sum(p.numel() for p in layer.parameters())
    assert (e.macs, e.unshared_params) == module_costs(layer, (1, c, h, w), (1, *e.output_shape))
    for a in e.axes:  # the text's rational value rounds to the layer's length
        assert int(a.quotient) == a.output


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_pool_numbers_equal_the_layer(data):
    kind = data.draw(st.sampled_from(["max", "avg"]))
    k, s = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    p = data.draw(st.integers(0, k // 2))
    ceil = data.draw(st.booleans())
    h, w = data.draw(st.integers(k + 1, 11)), data.draw(st.integers(k + 1, 11))
    layer = nn.MaxPool2d(k, s, p, ceil_mode=ceil) if kind == "max" else nn.AvgPool2d(k, s, p, ceil_mode=ceil)
    e = inspect.explain(layer, (3, h, w))
    assert e.output_shape == _real(layer, (3, h, w))
    ref = (torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d)(k, s, p, ceil_mode=ceil)
    assert e.output_shape == tuple(ref(torch.zeros(1, 3, h, w)).shape[1:])
    assert e.params == 0 and e.macs == 0


def test_1d_layers():
    e = inspect.explain("conv1d", (2, 20), out_channels=3, kernel_size=5, stride=2)
    assert e.output_shape == _real(nn.Conv1d(2, 3, 5, stride=2), (2, 20)) and e.axes[0].name == "length"
    assert inspect.explain("avg_pool1d", (2, 9), kernel_size=3).output_shape == (2, 3)


def test_layers_of_a_model_match_summary():
    model = models.get_model("lenet5")
    rows = {r.name: r for r in inspect.summary(model).rows}
    for name in ("c1", "s2", "c3", "s4", "c5"):
        e = inspect.explain_layer(model, name)
        row = rows[name]
        assert e.input_shape == row.input_shape[1:] and e.output_shape == row.output_shape[1:]
        assert e.receptive_field == row.receptive_field and e.macs == row.macs and e.params == row.params
    assert "in the model's input): 14x14" in str(inspect.explain_layer(model, "c3"))


def test_lenet5_partial_c3_connection_table():
    """The paper's C3 (1,516 parameters, 2,416 with a full table), counted from the layer's own tensors."""
    model = models.get_model("lenet5", partial_c3=True)
    e = inspect.explain_layer(model, "c3")
    row = next(r for r in inspect.summary(model).rows if r.name == "c3")
    assert e.partial and e.params == 1_516 == row.params and e.output_shape == row.output_shape[1:]
    assert e.macs == row.macs == 100 * 1_500 and e.unshared_params == row.unshared_params
    assert "16 filters: 60 x 25 = 1,500 weights + 16 biases = 1,516 parameters (reading all 6 maps: 16 x 150 + 16" \
           " = 2,416)" in str(e)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`layer` must be a module or one of"):
        inspect.explain("conv3d", (1, 8, 8))
    with pytest.raises(ValueError, match="needs `out_channels`"):
        inspect.explain("conv2d", (1, 8, 8), kernel_size=3)
    with pytest.raises(ValueError, match=r"`input_size` for Conv2d must be \(C, H, W\)"):
        inspect.explain("conv2d", (8, 8), out_channels=1, kernel_size=3)
    with pytest.raises(TypeError, match="does not take these arguments"):
        inspect.explain("max_pool2d", (1, 8, 8), kernel_size=2, out_channels=3)
    with pytest.raises(ValueError, match="larger than the padded input"):
        inspect.explain("conv2d", (1, 4, 4), out_channels=1, kernel_size=5)
    with pytest.raises(ValueError, match="its convolution and pooling layers: c1, s2, c3, s4, c5"):
        inspect.explain_layer(models.get_model("lenet5"), "act1")


def test_cli_by_parameters(capsys):
    code, out, _ = run(capsys, "explain", "conv2d", "--input", "3x227x227", "--out-channels", "96", "--kernel",
                       "11", "--stride", "4", "--padding", "0")
    assert code == 0 and "96 filters: 96 x 363 = 34,848 weights + 96 biases = 34,944 parameters" in out
    code, out, _ = run(capsys, "explain", "max_pool2d", "--input", "6x28x28", "--kernel", "2", "--ceil-mode")
    assert code == 0 and "ceil_mode=True" in out and "6 x 14 x 14" in out
    code, out, _ = run(capsys, "explain", "conv2d", "--input", "1x8x8", "--out-channels", "2", "--kernel", "1x3",
                       "--padding", "same", "--no-bias")
    assert code == 0 and "no bias" in out and "'same'" in out


def test_cli_layer_of_a_zoo_model(capsys):
    code, out, _ = run(capsys, "explain", "alexnet", "features.0")
    assert code == 0 and "Conv2d features.0: input 3x227x227 -> output 96x55x55" in out
    assert "105,705,600" in out and "34,944 parameters" in out


def test_cli_model_input_size_and_checkpoint(capsys, tmp_path):
    code, out, _ = run(capsys, "explain", "lenet5", "c3", "--input", "1x32x32")
    assert code == 0 and "Conv2d c3: input 6x14x14 -> output 16x10x10" in out and "2,416 parameters" in out
    code, _, err = run(capsys, "explain", "lenet5", "c1", "--input", "1x28x28")
    assert code == 1 and "LeNet5 does not run on input 1x28x28" in err
    assert main(["train", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "explain", tmp_path, "features.4")
    assert code == 0 and "MaxPool2d features.4: input 32x8x8 -> output 32x4x4" in out
    assert "Receptive field (in the model's input): 6x6" in out


@pytest.mark.parametrize("argv, needle", [
    (["explain", "conv2d", "--out-channels", "2", "--kernel", "3"], "--input is required"),
    (["explain", "lenet5"], "name a layer of LeNet5"),
    (["explain", "lenet5", "c1", "--kernel", "3"], "only for a layer given by its parameters"),
    (["explain", "conv2d", "c1", "--input", "1x8x8"], "takes no layer name"),
    (["explain", "conv2d", "--input", "3x-1"], "--input"),
])
def test_cli_errors_are_one_line(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code != 0 and len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err
