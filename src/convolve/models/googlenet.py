"""GoogLeNet / Inception v1 (Szegedy et al. 2014) in torchvision's form, with the same state_dict keys.

Each Inception module runs four branches in parallel and concatenates them along channels: a 1x1 conv;
a 1x1 reduction then a 3x3; a 1x1 reduction then the "5x5"; a 3x3/1 max pool then a 1x1 projection.
Inception 3a outputs 64 + 128 + 32 + 32 = 256 channels. Two auxiliary classifiers (after 4a and 4d)
are used in training only (the paper weights their losses by 0.3); in training mode with
`aux_logits=True` the forward returns `GoogLeNetOutputs(logits, aux_logits2, aux_logits1)` as torchvision.

torchvision's variant, reproduced here: every conv is conv (no bias) + BatchNorm (eps 0.001) + ReLU
(`BasicConv2d`), and the "5x5" branch is a 3x3 conv (a known torchvision quirk kept for compatible
weights): 6,624,904 parameters without the aux heads, 13,004,888 with. `true_5x5=True` uses 5x5 there,
as in the paper (not torchvision-compatible). Native input 224x224x3.
"""

from __future__ import annotations

from typing import NamedTuple

import convolve as cv
from convolve import nn
from convolve.models._registry import register_model
from convolve.tensor import Tensor


class GoogLeNetOutputs(NamedTuple):
    """Training-mode output of GoogLeNet with aux heads (torchvision's field names and order)."""

    logits: Tensor
    aux_logits2: Tensor | None
    aux_logits1: Tensor | None


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm2d(eps=0.001) -> ReLU: torchvision's building block for Inception nets.

    `batch_norm=False` gives conv (with bias) -> ReLU and no `bn` (Inception-v2's auxiliary head before
    "BN-auxiliary").
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              bias=not batch_norm)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001) if batch_norm else None
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return self.relu(self.bn(x) if self.bn is not None else x)


class Inception(nn.Module):
    """Inception v1 module: 1x1 | 1x1 -> 3x3 | 1x1 -> "5x5" | maxpool 3x3/1 -> 1x1, concatenated."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, five_kernel: int = 3) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=five_kernel, padding=five_kernel // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return cv.cat(branches, dim=1)  # (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)


class InceptionAux(nn.Module):
    """Auxiliary classifier: adaptive 4x4 avg pool, 1x1 conv 128, FC 1024 + ReLU, dropout 0.7, FC classes."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.flatten = nn.Flatten()
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(self.avgpool(x))  # (N, 128, 4, 4)
        x = self.relu(self.fc1(self.flatten(x)))  # (N, 1024)
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    """GoogLeNet: stem, inception 3a-3b, 4a-4e, 5a-5b, global average pool, dropout 0.2, fc."""

    aux_loss_weight = 0.3  # the paper's weight of each auxiliary classifier's loss (training only)

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.2,
                 dropout_aux: float = 0.7, true_5x5: bool = False) -> None:
        super().__init__()
        k = 5 if true_5x5 else 3
        self.aux_logits = aux_logits
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)  # (N, 64, 112, 112)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # (N, 64, 56, 56)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # (N, 192, 28, 28)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32, k)  # (N, 256, 28, 28)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64, k)  # (N, 480, 28, 28)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # (N, 480, 14, 14)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64, k)  # (N, 512, 14, 14)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64, k)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64, k)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64, k)  # (N, 528, 14, 14)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128, k)  # (N, 832, 14, 14)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # (N, 832, 7, 7)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128, k)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128, k)  # (N, 1024, 7, 7)
        self.aux1 = InceptionAux(512, num_classes, dropout_aux) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, dropout_aux) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(self.flatten(self.avgpool(x))))
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


@register_model(input_size=(3, 224, 224), num_classes=1000, family="googlenet")
def googlenet(num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.2, dropout_aux: float = 0.7,
              true_5x5: bool = False) -> GoogLeNet:
    """GoogLeNet / Inception v1, torchvision's BN variant: 6,624,904 parameters (13,004,888 with aux heads)."""
    return GoogLeNet(num_classes, aux_logits, dropout, dropout_aux, true_5x5)
