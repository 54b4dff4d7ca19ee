"""Inception-v2 against the paper's Table 1 (Szegedy et al. 2015): every row's input size is the input the layer
really receives; parameters and MACs equal the arithmetic of the table's layers and the blocks' widths; the
ablation ladder's steps (factorized 7x7 stem, BN-auxiliary) change exactly what their arithmetic says."""

from __future__ import annotations

import math
from typing import Any

import pytest

import convolve as cv
import convolve.models as M
from convolve import nn
from convolve.inspect import summary
from tests.model_helpers import n_params, one_blas_thread  # noqa: F401 (autouse fixture)

# Table 1 as printed: (type, patch size/stride or remarks, input size H x W x C), and the module that row is here.
TABLE_1 = [
    ("conv", "3x3/2", (299, 299, 3), "Conv2d_1a_3x3"),
    ("conv", "3x3/1", (149, 149, 32), "Conv2d_2a_3x3"),
    ("conv padded", "3x3/1", (147, 147, 32), "Conv2d_2b_3x3"),
    ("pool", "3x3/2", (147, 147, 64), "maxpool1"),
    ("conv", "3x3/1", (73, 73, 64), "Conv2d_3b_3x3"),
    ("conv", "3x3/2", (71, 71, 80), "Conv2d_4a_3x3"),
    ("conv", "3x3/1", (35, 35, 192), "Conv2d_4b_3x3"),  # read as padded: the next row's input is 35x35
    ("3xInception", "As in figure 5", (35, 35, 288), "Mixed_5b"),
    ("5xInception", "As in figure 6", (17, 17, 768), "Mixed_6b"),  # after the grid reduction Mixed_6a
    ("2xInception", "As in figure 7", (8, 8, 1280), "Mixed_7b"),  # after the grid reduction Mixed_7a
    ("pool", "8x8", (8, 8, 2048), "avgpool"),
    ("linear", "logits", (1, 1, 2048), "fc"),
]


def child_inputs(model: nn.Module, size: int = 299) -> dict[str, tuple[int, ...]]:
    """The input shape each direct child receives in one eval-mode forward."""
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str, inputs: tuple[Any, ...]) -> None:
        seen.setdefault(name, tuple(inputs[0].shape))

    handles = [child.register_forward_hook(lambda m, i, o, n=name: record(n, i))
               for name, child in model.named_children()]
    model.eval()
    with cv.no_grad():
        out = model(cv.randn(1, 3, size, size))
    for h in handles:
        h.remove()
    seen["softmax"] = tuple(out.shape)
    return seen


def pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple) else (value, value)


def test_every_row_of_table_1_is_the_input_the_layer_gets() -> None:
    model = M.inception_v2()
    inputs = child_inputs(model)
    for kind, patch, (h, w, c), name in TABLE_1:
        shape = inputs[name]
        assert math.prod(shape[1:]) == h * w * c and shape[1] == c, f"{kind} {patch}: {name} gets {shape}"
        layer = getattr(model, name)
        if kind.startswith(("conv", "pool")) and "/" in patch:  # "3x3/2": kernel and stride
            kernel, stride = patch.split("/")
            window = layer.conv if kind.startswith("conv") else layer
            assert pair(window.kernel_size) == tuple(int(v) for v in kernel.split("x")), name
            assert pair(window.stride) == (int(stride),) * 2, name
    assert inputs["softmax"] == (1, 1000)  # the classifier's 1x1x1000
    assert model.Conv2d_2b_3x3.conv.padding == model.Conv2d_4b_3x3.conv.padding == (1, 1)
    blocks = dict(model.named_children())
    assert [n for n, b in blocks.items() if isinstance(b, M.inception.InceptionA)] == ["Mixed_5b", "Mixed_5c",
                                                                                      "Mixed_5d"]
    assert sum(isinstance(b, M.inception.InceptionC) for b in blocks.values()) == 5
    assert sum(isinstance(b, M.inception.InceptionE) for b in blocks.values()) == 2
    figure_5 = [m.kernel_size for m in model.Mixed_5b.modules() if isinstance(m, nn.Conv2d)]
    assert (5, 5) not in figure_5 and figure_5.count((3, 3)) == 3  # every 5x5 replaced (Figure 5)


# ----- the arithmetic: each conv as (in, out, kh, kw, output grid side) -------------------------------------------
Conv = tuple[int, int, int, int, int]


def stem(factorized: bool = True) -> list[Conv]:
    first = [(3, 32, 3, 3, 149), (32, 32, 3, 3, 147), (32, 64, 3, 3, 147)] if factorized else [(3, 64, 7, 7, 147)]
    return [*first, (64, 80, 3, 3, 71), (80, 192, 3, 3, 35), (192, 288, 3, 3, 35)]


def figure_5(cin: int, pool: int) -> list[Conv]:  # 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool -> 1x1, on 35x35
    return [(cin, 64, 1, 1, 35), (cin, 48, 1, 1, 35), (48, 64, 3, 3, 35), (cin, 64, 1, 1, 35), (64, 96, 3, 3, 35),
            (96, 96, 3, 3, 35), (cin, pool, 1, 1, 35)]


def reduction_35_to_17(cin: int) -> list[Conv]:  # 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool
    return [(cin, 384, 3, 3, 17), (cin, 64, 1, 1, 35), (64, 96, 3, 3, 35), (96, 96, 3, 3, 17)]


def figure_6(c7: int) -> list[Conv]:  # n = 7 on 17x17
    return [(768, 192, 1, 1, 17), (768, c7, 1, 1, 17), (c7, c7, 1, 7, 17), (c7, 192, 7, 1, 17),
            (768, c7, 1, 1, 17), (c7, c7, 7, 1, 17), (c7, c7, 1, 7, 17), (c7, c7, 7, 1, 17), (c7, 192, 1, 7, 17),
            (768, 192, 1, 1, 17)]


def reduction_17_to_8() -> list[Conv]:  # 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool
    return [(768, 192, 1, 1, 17), (192, 320, 3, 3, 8), (768, 192, 1, 1, 17), (192, 192, 1, 7, 17),
            (192, 192, 7, 1, 17), (192, 192, 3, 3, 8)]


def figure_7(cin: int) -> list[Conv]:  # expanded filter bank outputs on 8x8
    return [(cin, 320, 1, 1, 8), (cin, 384, 1, 1, 8), (384, 384, 1, 3, 8), (384, 384, 3, 1, 8), (cin, 448, 1, 1, 8),
            (448, 384, 3, 3, 8), (384, 384, 1, 3, 8), (384, 384, 3, 1, 8), (cin, 192, 1, 1, 8)]


def table_1_convs(factorized: bool = True) -> list[Conv]:
    convs = stem(factorized) + 3 * figure_5(288, 64) + reduction_35_to_17(288)
    for c7 in (128, 160, 160, 160, 192):
        convs += figure_6(c7)
    return convs + reduction_17_to_8() + figure_7(1280) + figure_7(2048)


def params(convs: list[Conv]) -> int:  # weights, plus BatchNorm's scale and shift per output channel
    return sum(kh * kw * cin * cout + 2 * cout for cin, cout, kh, kw, _ in convs)


def macs(convs: list[Conv]) -> int:  # one multiply-accumulate per weight per output position
    return sum(grid * grid * kh * kw * cin * cout for cin, cout, kh, kw, grid in convs)


FC = 2048 * 1000  # the logits layer's weights (and MACs); + 1000 biases


def aux_params(bn_fc: bool) -> int:  # 1x1 conv 128 (BN), the 5x5 "fully connected" 768 (BN or bias), fc
    return params([(768, 128, 1, 1, 5)]) + 5 * 5 * 128 * 768 + (2 * 768 if bn_fc else 768) + 768 * 1000 + 1000


def test_parameters_and_macs_are_the_arithmetic_of_table_1() -> None:
    model = M.inception_v2()
    expected = params(table_1_convs()) + FC + 1000
    assert n_params(M.inception_v2(aux_logits=False)) == expected == 25_954_248
    assert n_params(model) == expected + aux_params(bn_fc=False) == 29_280_176
    s = summary(model)  # eval mode: the aux head is not run
    assert s.total_macs == macs(table_1_convs()) + FC == 6_352_562_784
    for row in s.rows:
        assert row.claimed_shape == row.output_shape, row.name


@pytest.mark.parametrize("builder", ["inception_v2", "inception_v3"])
def test_the_ladder_steps_cost_what_their_arithmetic_says(builder: str) -> None:
    """+ Factorized 7x7: three 3x3 convs for one 7x7/2 (same 147x147x64 out); + BN-auxiliary: BN on the aux FC."""
    def count(**options: Any) -> tuple[int, int]:
        model = M.get_model(builder, **options)
        return n_params(model), summary(model, (3, 75, 75)).total_macs  # 75x75 is enough to see the stem's cost

    seven = count(factorized_stem=False, bn_aux=False)
    three = count(factorized_stem=True, bn_aux=False)
    both = count(factorized_stem=True, bn_aux=True)
    stem_3x3, stem_7x7 = stem(True)[:3], stem(False)[:1]
    assert three[0] - seven[0] == params(stem_3x3) - params(stem_7x7) == 19_232
    assert macs(stem_3x3) - macs(stem_7x7) == 413_329_824  # at 299x299: the factorized stem costs more
    # at 75x75: 3x3/2 -> (75 - 3) // 2 + 1 = 37, 3x3 -> 35, padded 3x3 -> 35; 7x7/2 -> (75 - 7) // 2 + 1 = 35
    at_75_3x3 = [(3, 32, 3, 3, 37), (32, 32, 3, 3, 35), (32, 64, 3, 3, 35)]
    at_75_7x7 = [(3, 64, 7, 7, 35)]
    assert three[1] - seven[1] == macs(at_75_3x3) - macs(at_75_7x7)
    assert both[0] - three[0] == aux_params(bn_fc=True) - aux_params(bn_fc=False) == 768
    assert both[1] == three[1]  # the aux head does not run at inference
    assert stem_3x3[-1][1] == stem_7x7[0][1] and stem_3x3[-1][-1] == stem_7x7[0][-1]  # same 147x147x64 output


def test_inception_v3_options_keep_torchvision_layout_by_default() -> None:
    v3 = M.inception_v3()
    assert n_params(v3) == 27_161_264 and v3.AuxLogits.conv1.bn is not None
    no_bn = M.inception_v3(bn_aux=False)
    keys = set(no_bn.state_dict())
    assert "AuxLogits.conv1.conv.bias" in keys and not any(k.startswith("AuxLogits.conv1.bn") for k in keys)
    seven = M.inception_v3(factorized_stem=False)
    assert seven.Conv2d_1a_7x7.conv.kernel_size == (7, 7) and not hasattr(seven, "Conv2d_2a_3x3")
    assert M.model_spec("inception_v2").options == ("aux_logits", "dropout", "factorized_stem", "bn_aux")
    assert M.model_spec("inception_v3").options == ("aux_logits", "dropout", "factorized_stem", "bn_aux")


def test_bad_options() -> None:
    with pytest.raises(TypeError, match=r"`factorized_stem` must be True or False, got 1"):
        M.inception_v2(factorized_stem=1)
    with pytest.raises(TypeError, match=r"`bn_aux` must be True or False, got 'yes'"):
        M.get_model("inception_v3", bn_aux="yes")
    with pytest.raises(ValueError, match=r"`layout` must be one of \('released', 'table1'\), got 'paper'"):
        M.Inception3(layout="paper")
