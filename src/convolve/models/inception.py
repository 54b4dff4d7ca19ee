"""Inception v2/v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture"), torchvision's keys.

The ideas, each visible in one block: a 5x5 conv factorised into two 3x3 (`InceptionBlockV2`,
`InceptionA`'s double-3x3 branch: 18 vs 25 weights per channel pair, 28% cheaper, same 5x5 receptive
field); n x n factorised into 1 x n then n x 1 (`InceptionC`, 1x7/7x1 on the 17x17 grid; `InceptionE`,
1x3 and 3x1 side by side); grid reduction by parallel stride-2 convs and pooling, concatenated, instead
of pooling before or after an expensive conv (`InceptionB`, `InceptionD`).

`inception_v3` is torchvision's Inception3 (module names Conv2d_1a_3x3 ... Mixed_7c, AuxLogits; every
conv is `BasicConv2d` = conv + BN(eps 0.001) + ReLU): 27,161,264 parameters with the aux head,
23,834,568 without; 299x299x3 native input (75x75 is the smallest that fits). In training mode with
`aux_logits=True` the forward returns `InceptionOutputs(logits, aux_logits)`. It is the layout of the
released TensorFlow model, which differs from the paper's Table 1 (see `InceptionV2`).

`inception_v2` is the network of the paper's Table 1, built from the same blocks (`Inception3` with
`layout="table1"`); its options are the architectural steps of the paper's Table 3 ablation ladder
(`factorized_stem`, `bn_aux`), which both builders accept.
"""

from __future__ import annotations

from typing import NamedTuple

import convolve as cv
from convolve import nn
from convolve.models._registry import register_model
from convolve.models.googlenet import BasicConv2d
from convolve.tensor import Tensor


class InceptionOutputs(NamedTuple):
    """Training-mode output of Inception v3 with the aux head (torchvision's field names)."""

    logits: Tensor
    aux_logits: Tensor | None


class InceptionBlockV2(nn.Module):
    """GoogLeNet's Inception module with its 5x5 branch factorised into two 3x3 convs (Inception v2, Figure 5).

    Branches: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 (sees 5x5) | 3x3/1 avg pool -> 1x1; concatenated.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch3x3 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                       BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch5x5 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                       BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
                                       BasicConv2d(ch5x5, ch5x5, kernel_size=3, padding=1))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(kernel_size=3, stride=1, padding=1),
                                         BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        outs = [self.branch1x1(x), self.branch3x3(x), self.branch5x5(x), self.branch_pool(x)]
        return cv.cat(outs, dim=1)  # (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1 (`pool_features`).

    torchvision's (the released model's) block keeps a 5x5 branch; `five_kernel=3` makes it the paper's
    Figure 5 module, every 5x5 gone (that branch's conv is then a 3x3, under the same module names).
    """

    def __init__(self, in_channels: int, pool_features: int, five_kernel: int = 5) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=five_kernel, padding=five_kernel // 2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.pool = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)  # a module (not F.avg_pool2d) so hooks see it
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(self.pool(x))
        return cv.cat([b1, b5, b3, bp], dim=1)  # (N, 224 + pool_features, H, W)


class InceptionB(nn.Module):
    """35x35 -> 17x17 grid reduction: 3x3/2 conv | 1x1 -> 3x3 -> 3x3/2 | 3x3/2 max pool, concatenated.

    The pool branch passes the input's channels through, so the output has `ch3x3 + ch3x3dbl + in_channels`
    channels (torchvision's widths 384 and 64 -> 96 -> 96 by default: 288 -> 768).
    """

    def __init__(self, in_channels: int, ch3x3: int = 384, ch3x3dbl_reduce: int = 64, ch3x3dbl: int = 96) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, ch3x3, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, ch3x3dbl_reduce, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(ch3x3dbl_reduce, ch3x3dbl, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(ch3x3dbl, ch3x3dbl, kernel_size=3, stride=2)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.pool(x)
        return cv.cat([b3, bd, bp], dim=1)  # (N, ch3x3 + ch3x3dbl + in_channels, H', W')


class InceptionC(nn.Module):
    """17x17 block with 7x7 convs factorised into 1x7 and 7x1 (`channels_7x7` wide inside the branches)."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.pool = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(self.branch7x7dbl_2(bd))))
        bp = self.branch_pool(self.pool(x))
        return cv.cat([b1, b7, bd, bp], dim=1)  # (N, 768, 17, 17)


class InceptionD(nn.Module):
    """17x17 -> 8x8 grid reduction: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | 3x3/2 max pool."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = self.pool(x)
        return cv.cat([b3, b7, bp], dim=1)  # (N, 512 + in_channels, 8, 8)


class InceptionE(nn.Module):
    """8x8 block with expanded filter banks: 3x3 split into 1x3 and 3x1 side by side (concatenated)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.pool = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = cv.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = cv.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], dim=1)
        bp = self.branch_pool(self.pool(x))
        return cv.cat([b1, b3, bd, bp], dim=1)  # (N, 2048, 8, 8)


class InceptionAux(nn.Module):
    """Auxiliary head on the 17x17 grid: 5x5/3 avg pool, 1x1 conv 128, 5x5 conv 768, global pool, fc.

    On the 5x5 map of a 299x299 input the 5x5 conv is the head's fully connected layer (each of its 768 units
    reads all 128x5x5 values). `bn_fc=True` (torchvision's, the released model's) batch-normalizes it: the
    paper's "BN-auxiliary"; `bn_fc=False` gives it a bias and no BatchNorm, as before that step.
    """

    def __init__(self, in_channels: int, num_classes: int, bn_fc: bool = True) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=5, stride=3)
        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5, batch_norm=bn_fc)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv0(self.pool(x))  # (N, 128, 5, 5)
        x = self.avgpool(self.conv1(x))  # (N, 768, 1, 1)
        return self.fc(self.flatten(x))


LAYOUTS = ("released", "table1")
# channels_7x7 of the 17x17 blocks Mixed_6b, 6c, ...: torchvision's four; Table 1 asks for five (one more 160).
CHANNELS_7X7 = {"released": (128, 160, 160, 192), "table1": (128, 160, 160, 160, 192)}


def _check_flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"Inception3: `{name}` must be True or False, got {value!r}")
    return value


def _stem(layout: str, factorized: bool) -> dict[str, nn.Module]:
    """The layers before the first Inception block, by name, for a 299x299 input (shapes in comments)."""
    if factorized:  # the paper's factorized 7x7: three 3x3 convs
        first: dict[str, nn.Module] = {
            "Conv2d_1a_3x3": BasicConv2d(3, 32, kernel_size=3, stride=2),  # (N, 32, 149, 149)
            "Conv2d_2a_3x3": BasicConv2d(32, 32, kernel_size=3),  # (N, 32, 147, 147)
            "Conv2d_2b_3x3": BasicConv2d(32, 64, kernel_size=3, padding=1)}  # (N, 64, 147, 147)
    else:  # one 7x7/2 conv, unpadded: the same (N, 64, 147, 147) as the three 3x3 it stands for
        first = {"Conv2d_1a_7x7": BasicConv2d(3, 64, kernel_size=7, stride=2)}
    first["maxpool1"] = nn.MaxPool2d(kernel_size=3, stride=2)  # (N, 64, 73, 73)
    if layout == "released":
        return {**first, "Conv2d_3b_1x1": BasicConv2d(64, 80, kernel_size=1),
                "Conv2d_4a_3x3": BasicConv2d(80, 192, kernel_size=3),  # (N, 192, 71, 71)
                "maxpool2": nn.MaxPool2d(kernel_size=3, stride=2)}  # (N, 192, 35, 35)
    return {**first, "Conv2d_3b_3x3": BasicConv2d(64, 80, kernel_size=3),  # (N, 80, 71, 71)
            "Conv2d_4a_3x3": BasicConv2d(80, 192, kernel_size=3, stride=2),  # (N, 192, 35, 35)
            "Conv2d_4b_3x3": BasicConv2d(192, 288, kernel_size=3, padding=1)}  # (N, 288, 35, 35)


def _blocks_35(layout: str) -> dict[str, nn.Module]:
    """The three 35x35 blocks: torchvision's (192 -> 256 -> 288 -> 288) or Figure 5's (288 -> 288, no 5x5)."""
    if layout == "released":
        return {"Mixed_5b": InceptionA(192, pool_features=32), "Mixed_5c": InceptionA(256, pool_features=64),
                "Mixed_5d": InceptionA(288, pool_features=64)}
    return {f"Mixed_5{c}": InceptionA(288, pool_features=64, five_kernel=3) for c in "bcd"}


class Inception3(nn.Module):
    """Inception v3: stem, Mixed_5b-5d, 6a-6e, 7a-7c, global average pool, fc (torchvision's `Inception3`).

    `layout="table1"` lays it out as the paper's Table 1 (see `InceptionV2`); `factorized_stem=False` replaces
    the first three 3x3 convs by one 7x7/2 conv; `bn_aux=False` drops the BatchNorm of the aux head's fully
    connected layer. Both are steps of the paper's Table 3 ladder; the defaults are torchvision's model.
    """

    aux_loss_weight = 0.4  # the aux loss weight of the released model's training script (TF-slim)

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.5, *,
                 layout: str = "released", factorized_stem: bool = True, bn_aux: bool = True) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"Inception3: `layout` must be one of {LAYOUTS}, got {layout!r}")
        self.aux_logits = _check_flag(aux_logits, "aux_logits")
        stem, blocks_35 = _stem(layout, _check_flag(factorized_stem, "factorized_stem")), _blocks_35(layout)
        blocks_17 = {f"Mixed_6{c}": InceptionC(768, channels_7x7=c7)
                     for c, c7 in zip("bcdefgh", CHANNELS_7X7[layout])}
        for name, module in {**stem, **blocks_35, "Mixed_6a": InceptionB(288), **blocks_17}.items():
            setattr(self, name, module)  # (N, 768, 17, 17) after Mixed_6a
        self._before_aux = (*stem, *blocks_35, "Mixed_6a", *blocks_17)
        self.AuxLogits = InceptionAux(768, num_classes, _check_flag(bn_aux, "bn_aux")) if aux_logits else None
        self.Mixed_7a = InceptionD(768)  # (N, 1280, 8, 8)
        self.Mixed_7b = InceptionE(1280)  # (N, 2048, 8, 8)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: Tensor) -> Tensor | InceptionOutputs:
        for name in self._before_aux:
            x = getattr(self, name)(x)
        aux = self.AuxLogits(x) if self.AuxLogits is not None and self.training else None
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        x = self.fc(self.flatten(self.dropout(self.avgpool(x))))
        if self.training and self.aux_logits:
            return InceptionOutputs(x, aux)
        return x


class InceptionV2(Inception3):
    """Inception-v2 as the paper's Table 1 lays it out, from the blocks of `Inception3`.

    Table 1 gives each layer's input size and the blocks' figures, not the widths inside the blocks (those were
    in a supplementary model file, not in the paper). The readings chosen:
    - stem as printed: conv 3x3/2, conv 3x3, conv padded 3x3, pool 3x3/2, conv 3x3 (64 -> 80), conv 3x3/2
      (80 -> 192), then the row "conv 3x3/1, input 35x35x192", read as a padded 3x3 conv to 288 channels (the
      next row's input is 35x35x288; an unpadded conv would give 33x33, a pool would keep 192 channels);
    - 3 x Figure 5 (`InceptionA` widths, its 5x5 replaced by a 3x3: the figure has no 5x5), the grid reduction
      of Figure 10 to 17x17x768 (`InceptionB`), 5 x Figure 6 (`InceptionC`, n = 7; channels_7x7 128, 160, 160,
      160, 192: torchvision's four with one more 160), the reduction to 8x8x1280 (`InceptionD`), 2 x Figure 7
      (`InceptionE`), 8x8 average pool, dropout, linear;
    - the aux head on the last 17x17 block as the released model's (`InceptionAux`), its fully connected layer
      without BatchNorm (`bn_aux=False`: the Table 3 rows before "BN-auxiliary").
    `factorized_stem=False` gives the stem of Table 3's first row (one 7x7/2 conv); `bn_aux=True` the last row,
    the paper's Inception-v3.
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.5,
                 factorized_stem: bool = True, bn_aux: bool = False) -> None:
        super().__init__(num_classes, aux_logits, dropout, layout="table1", factorized_stem=factorized_stem,
                         bn_aux=bn_aux)


@register_model(input_size=(3, 299, 299), num_classes=1000, family="inception")
def inception_v2(num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.5,
                 factorized_stem: bool = True, bn_aux: bool = False) -> InceptionV2:
    """Inception v2 as in the paper's Table 1, 299x299; `factorized_stem`, `bn_aux`: the ladder to v3."""
    return InceptionV2(num_classes, aux_logits, dropout, factorized_stem, bn_aux)


@register_model(input_size=(3, 299, 299), num_classes=1000, family="inception")
def inception_v3(num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.5,
                 factorized_stem: bool = True, bn_aux: bool = True) -> Inception3:
    """Inception v3 (torchvision keys), 299x299: 27,161,264 parameters with the aux head, 23,834,568 without."""
    return Inception3(num_classes, aux_logits, dropout, factorized_stem=factorized_stem, bn_aux=bn_aux)
