"""The lecture's numbers (/work/shared/LECTURE_FACTS.md), recomputed by convolve's layers, models and inspector.

Every expected value is either quoted from the lecture or written as the arithmetic that produces it; the
value under test always comes from the code (a summary row, a parameter count, a geometry function)."""

from __future__ import annotations

import math

import convolve.models as M
from convolve import nn
from convolve.inspect import im2col_shapes, output_size, summary
from tests.model_helpers import n_params, one_blas_thread  # noqa: F401 (autouse fixture)


def last_field(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Receptive-field size (first spatial axis) of the last layer's units, from the summary."""
    field = summary(model, input_size).rows[-1].receptive_field
    assert field is not None and field[0].size == field[1].size
    return int(field[0].size)


# ----- fully connected vs convolution ------------------------------------------------------------------------
def test_fully_connected_counts() -> None:
    assert summary(nn.Sequential(nn.Flatten(), nn.Linear(512 * 512, 8)), (1, 512, 512)).total_params == 2_097_160
    assert nn.Linear(200 * 200 * 3, 1).weight.numel() == 120_000  # weights per neuron
    assert nn.Linear(32 * 32 * 3, 1).weight.numel() == 3_072


def test_digit_example_fc_vs_conv() -> None:
    """28x28 digit: 10 fully connected neurons need 7,840 weights; 3 3x3 filters + pooling to 7x7x3 + FC: 1,470."""
    assert nn.Linear(28 * 28, 10).weight.numel() == 7_840
    conv_net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
                             nn.Linear(7 * 7 * 3, 10))
    rows = summary(conv_net, (1, 28, 28)).rows
    assert rows[2].output_shape == (1, 3, 7, 7)
    assert conv_net[4].weight.numel() == 1_470 and conv_net[0].weight.numel() == 27
    assert n_params(conv_net) < 7_840
    # a conv layer's parameter count does not depend on the input size
    conv = nn.Conv2d(1, 3, 3)
    assert summary(conv, (1, 28, 28)).total_params == summary(conv, (1, 280, 280)).total_params == 30


# ----- convolution arithmetic ----------------------------------------------------------------------------------
def test_alexnet_conv1_shared_vs_unshared() -> None:
    row = summary(nn.Conv2d(3, 96, 11, stride=4), (3, 227, 227)).rows[0]
    assert row.output_shape == (1, 96, 55, 55)
    assert math.prod(row.output_shape) == 290_400  # neurons
    assert row.params == 34_944  # 96 x 363 weights + 96 biases
    assert row.unshared_params == 105_705_600  # 290,400 x (363 + 1)
    assert row.macs == 290_400 * 363 and row.flops == 2 * 290_400 * 363  # FLOPs = 2 x MACs, by hand


def test_alexnet_conv1_im2col() -> None:
    shp = im2col_shapes(3, (227, 227), (11, 11), 96, stride=4)
    assert shp.columns == (363, 3_025) and shp.weights == (96, 363) and shp.output == (96, 3_025)


def test_output_size_examples() -> None:
    assert (output_size(7, 3, 1), output_size(7, 3, 2)) == (5, 3)
    assert output_size(11, 5, 2) == 4  # 11x11x4 input, F=5, S=2 -> 4x4
    conv = summary(nn.Conv2d(3, 2, 3, stride=2, padding=1), (3, 5, 5)).rows[0]
    assert conv.output_shape == (1, 2, 3, 3)
    assert summary(nn.MaxPool2d(2, 2), (64, 224, 224)).rows[0].output_shape == (1, 64, 112, 112)
    assert all(output_size(n, 2 * p + 1, 1, p) == n for n in (5, 32) for p in (1, 2, 3))  # P = (F-1)/2 keeps W


# ----- receptive fields ----------------------------------------------------------------------------------------
def test_stacked_and_dilated_fields() -> None:
    def convs(n: int) -> nn.Sequential:
        return nn.Sequential(*[nn.Conv2d(4, 4, 3, padding=1, bias=False) for _ in range(n)])

    assert last_field(convs(2), (4, 16, 16)) == 5 and last_field(convs(3), (4, 16, 16)) == 7
    c = 64
    assert n_params(nn.Sequential(*[nn.Conv2d(c, c, 3, bias=False) for _ in range(3)])) == 27 * c**2
    assert n_params(nn.Conv2d(c, c, 7, bias=False)) == 49 * c**2
    assert last_field(nn.Conv2d(1, 1, 3, dilation=2), (1, 9, 9)) == 5


def test_hand_computed_fields_of_a_plain_stack() -> None:
    """conv3 -> conv3 -> pool2/2 -> conv3: 3, 3 + 2 = 5, 5 + 1 = 6 (jump 2), 6 + 2 x 2 = 10."""
    stack = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1), nn.MaxPool2d(2),
                          nn.Conv2d(2, 2, 3, padding=1))
    fields = [r.receptive_field[0] for r in summary(stack, (1, 16, 16)).rows]
    assert [(f.size, f.jump) for f in fields] == [(3, 1), (5, 1), (6, 2), (10, 2)]
    alex = nn.Sequential(nn.Conv2d(3, 96, 11, stride=4), nn.MaxPool2d(3, 2))
    assert last_field(alex, (3, 227, 227)) == 11 + 2 * 4  # pool1 units see 19x19 pixels


def test_fields_of_an_inception_block_and_a_residual_block() -> None:
    """Concatenation and addition: the merged field is the largest branch's (1x1 after the block reads it)."""
    paper = nn.Sequential(M.Inception(8, 4, 4, 4, 4, 4, 4, five_kernel=5), nn.Conv2d(16, 1, 1))
    assert last_field(paper, (8, 12, 12)) == 5  # the 5x5 branch
    tv = nn.Sequential(M.Inception(8, 4, 4, 4, 4, 4, 4), nn.Conv2d(16, 1, 1))
    assert last_field(tv, (8, 12, 12)) == 3  # torchvision's "5x5" branch is 3x3
    v2 = nn.Sequential(M.InceptionBlockV2(8, 4, 4, 4, 4, 4, 4), nn.Conv2d(16, 1, 1))
    assert last_field(v2, (8, 12, 12)) == 5  # two 3x3 see 5x5
    basic = nn.Sequential(M.BasicBlock(4, 4), nn.Conv2d(4, 1, 1))
    assert last_field(basic, (4, 12, 12)) == 5  # max(identity 1, two 3x3 = 5)
    bottleneck = nn.Sequential(M.Bottleneck(16, 4), nn.Conv2d(16, 1, 1))
    assert last_field(bottleneck, (16, 12, 12)) == 3


# ----- architectures ----------------------------------------------------------------------------------------------
def test_googlenet_inception_3a_channels() -> None:
    block = M.Inception(192, 64, 96, 128, 16, 32, 32)
    rows = summary(nn.Sequential(block), (192, 28, 28)).rows
    last_convs = {r.name.split(".")[1]: r.output_shape[1] for r in rows if r.type == "Conv2d"}
    assert last_convs == {"branch1": 64, "branch2": 128, "branch3": 32, "branch4": 32}
    assert block(summary(nn.Identity(), (192, 28, 28)).output).shape[1] == 64 + 128 + 32 + 32 == 256


def test_vgg16_weights_and_activations() -> None:
    """VGG-16: 138,357,544 parameters, 102,760,448 of them in the first FC layer; forward activations per image.

    The lecture (after the cs231n notes) quotes "~24M activations, ~93 MB" for the forward pass, but the
    notes' own per-layer list (input + every CONV/POOL/FC output) sums to about 15.2M values (~58 MiB):
    this test recomputes that list. Counting every layer's output as its own tensor, as convolve does
    (ReLU and Dropout are not in place), gives about 28.6M values (~109 MiB).
    """
    s = summary(M.vgg16(), (3, 224, 224))
    assert s.total_params == 138_357_544
    weights = {r.name: r.params for r in s.rows if r.params}
    assert weights["classifier.0"] == 25_088 * 4_096 + 4_096 and weights["classifier.0"] - 4_096 == 102_760_448
    assert weights["features.0"] == 3 * 9 * 64 + 64 and weights["features.28"] == 512 * 9 * 512 + 512
    counted = (nn.Conv2d, nn.MaxPool2d, nn.Linear)
    cs231n = 224 * 224 * 3 + sum(math.prod(r.output_shape) for r in s.rows
                                 if r.type in {t.__name__ for t in counted})
    per_layer = (224 * 224 * 3 + 2 * 224 * 224 * 64 + 112 * 112 * 64 + 2 * 112 * 112 * 128 + 56 * 56 * 128
                 + 3 * 56 * 56 * 256 + 28 * 28 * 256 + 3 * 28 * 28 * 512 + 14 * 14 * 512 + 3 * 14 * 14 * 512
                 + 7 * 7 * 512 + 4_096 + 4_096 + 1_000)
    assert cs231n == per_layer and round(cs231n / 1e6, 1) == 15.2
    assert 28e6 < s.activation_elements < 29e6 and s.activation_bytes == 4 * s.activation_elements
