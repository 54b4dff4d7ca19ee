"""Inception v2/v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture"), torchvision's keys.

The ideas, each visible in one block: a 5x5 conv factorised into two 3x3 (`InceptionBlockV2`,
`InceptionA`'s double-3x3 branch: 18 vs 25 weights per channel pair, 28% cheaper, same 5x5 receptive
field); n x n factorised into 1 x n then n x 1 (`InceptionC`, 1x7/7x1 on the 17x17 grid; `InceptionE`,
1x3 and 3x1 side by side); grid reduction by parallel stride-2 convs and pooling, concatenated, instead
of pooling before or after an expensive conv (`InceptionB`, `InceptionD`).

`inception_v3` is torchvision's Inception3 (module names Conv2d_1a_3x3 ... Mixed_7c, AuxLogits; every
conv is `BasicConv2d` = conv + BN(eps 0.001) + ReLU): 27,161,264 parameters with the aux head,
23,834,568 without; 299x299x3 native input (75x75 is the smallest that fits). In training mode with
`aux_logits=True` the forward returns `InceptionOutputs(logits, aux_logits)`.
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
    """35x35 block: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1 (`pool_features`)."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
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
    """35x35 -> 17x17 grid reduction: 3x3/2 conv | 1x1 -> 3x3 -> 3x3/2 | 3x3/2 max pool, concatenated."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.pool(x)
        return cv.cat([b3, bd, bp], dim=1)  # (N, 480 + in_channels, H', W')


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
    """Auxiliary head on the 17x17 grid: 5x5/3 avg pool, 1x1 conv 128, 5x5 conv 768, global pool, fc."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=5, stride=3)
        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv0(self.pool(x))  # (N, 128, 5, 5)
        x = self.avgpool(self.conv1(x))  # (N, 768, 1, 1)
        return self.fc(self.flatten(x))


class Inception3(nn.Module):
    """Inception v3: stem (5 convs, 2 max pools), Mixed_5b-5d, 6a-6e, 7a-7c, global average pool, fc."""

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.5) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)  # (N, 32, 149, 149)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)  # (N, 32, 147, 147)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)  # (N, 64, 73, 73)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)  # (N, 192, 71, 71)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)  # (N, 192, 35, 35)
        self.Mixed_5b = InceptionA(192, pool_features=32)  # (N, 256, 35, 35)
        self.Mixed_5c = InceptionA(256, pool_features=64)  # (N, 288, 35, 35)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)  # (N, 768, 17, 17)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)  # (N, 1280, 8, 8)
        self.Mixed_7b = InceptionE(1280)  # (N, 2048, 8, 8)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2048, num_classes)

    def _stem(self, x: Tensor) -> Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        return self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.maxpool1(x))))

    def forward(self, x: Tensor) -> Tensor | InceptionOutputs:
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(self._stem(x))))
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x)))))
        aux = self.AuxLogits(x) if self.AuxLogits is not None and self.training else None
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        x = self.fc(self.flatten(self.dropout(self.avgpool(x))))
        if self.training and self.aux_logits:
            return InceptionOutputs(x, aux)
        return x


@register_model(input_size=(3, 299, 299), num_classes=1000, family="inception")
def inception_v3(num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.5) -> Inception3:
    """Inception v3 (torchvision keys), 299x299: 27,161,264 parameters with the aux head, 23,834,568 without."""
    return Inception3(num_classes, aux_logits, dropout)
