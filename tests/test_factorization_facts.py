"""The lecture's factorisation facts for Inception v2/v3, recomputed: two stacked 3x3 convs see 5x5 with 18/25 of
the weights; 1x7 then 7x1 sees 7x7 with 14/49; the grid reduction 35x35x320 -> 17x17x640 is a stride-2 conv
branch concatenated with a stride-2 pooling of the input, cheaper than pooling before or after a convolution."""

from __future__ import annotations

import numpy as np
import pytest

import convolve as cv
import convolve.models as M
from convolve import nn
from convolve.inspect import summary
from convolve.nn import functional as F

C = 4  # channels in and out of every conv below (the ratios do not depend on it)


def seen_window(net: nn.Module, size: int) -> tuple[int, int]:
    """(rows, columns) of the input pixels the centre output unit depends on, found by back-propagation."""
    x = cv.randn(1, C, size, size, dtype=np.float64, requires_grad=True)
    out = net(x)
    h, w = out.shape[2] // 2, out.shape[3] // 2
    out[0, 0, h, w].backward()
    rows, cols = np.nonzero(np.abs(x.grad.numpy()).sum(axis=(0, 1)))
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def weights(net: nn.Module) -> int:
    return sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize(("factorised", "whole", "ratio"), [
    ([(3, 3), (3, 3)], (5, 5), 18 / 25),  # 5x5 -> two 3x3: 28% fewer weights
    ([(1, 7), (7, 1)], (7, 7), 14 / 49),  # 7x7 -> 1x7 then 7x1
    ([(1, 3), (3, 1)], (3, 3), 6 / 9),  # 3x3 -> 1x3 then 3x1: 33% fewer
])
def test_factorised_convs_see_the_same_window_with_fewer_weights(factorised, whole, ratio) -> None:
    cv.manual_seed(0)  # random but fixed weights: no accidental zero gradient
    stacked = nn.Sequential(*(nn.Conv2d(C, C, k, bias=False).double() for k in factorised))
    single = nn.Conv2d(C, C, whole, bias=False).double()
    assert seen_window(stacked, 11) == seen_window(single, 11) == whole
    field = summary(stacked, (C, 11, 11), dtype=np.float64).rows[-1].receptive_field
    assert (field[0].size, field[1].size) == whole  # the inspector's receptive field agrees
    assert weights(stacked) / weights(single) == pytest.approx(ratio)


def figure_10(in_channels: int = 320) -> nn.Module:
    """`InceptionB` with conv branches of 160 + 160 channels: the paper's 35x35x320 -> 17x17x640 example."""
    return M.inception.InceptionB(in_channels, ch3x3=160, ch3x3dbl_reduce=64, ch3x3dbl=160)


def test_grid_reduction_is_a_strided_conv_beside_a_pool() -> None:
    """The paper's Figure 10 example: 35x35x320 -> conv branches (320 channels, stride 2) + max pool (stride 2)."""
    block = figure_10().double().eval()
    x = cv.randn(1, 320, 35, 35, dtype=np.float64)
    with cv.no_grad():
        out = block(x)
        convs = cv.cat([block.branch3x3(x),
                        block.branch3x3dbl_3(block.branch3x3dbl_2(block.branch3x3dbl_1(x)))], dim=1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=2)
    assert tuple(out.shape) == (1, 640, 17, 17)  # 35x35x320 -> 17x17x640
    np.testing.assert_array_equal(out.numpy()[:, :320], convs.numpy())
    np.testing.assert_array_equal(out.numpy()[:, 320:], pooled.numpy())


def test_grid_reduction_is_cheaper_than_pooling_before_or_after_a_conv() -> None:
    """Figure 9's two alternatives to 17x17x640 vs Figure 10's parallel block, in MACs at 35x35x320."""
    pool_first = nn.Sequential(nn.MaxPool2d(3, 2), nn.Conv2d(320, 640, 3, padding=1))  # a representational bottleneck
    conv_first = nn.Sequential(nn.Conv2d(320, 640, 3, padding=1), nn.MaxPool2d(3, 2))  # 4x the work
    costs = {name: summary(net, (320, 35, 35)) for name, net in
             (("pool first", pool_first), ("conv first", conv_first), ("parallel", figure_10()))}
    assert all(tuple(s.output.shape) == (1, 640, 17, 17) for s in costs.values())
    assert costs["conv first"].total_macs == 35 * 35 * 9 * 320 * 640
    assert costs["pool first"].total_macs == 17 * 17 * 9 * 320 * 640
    assert costs["parallel"].total_macs == (17 * 17 * 9 * 320 * 160  # 3x3/2 conv, 160 channels
                                            + 35 * 35 * 320 * 64 + 35 * 35 * 9 * 64 * 160 + 17 * 17 * 9 * 160 * 160)
    assert costs["parallel"].total_macs < costs["pool first"].total_macs < costs["conv first"].total_macs
