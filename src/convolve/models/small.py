"""Small networks that train in seconds to minutes on a CPU: digits (8x8), MNIST (28x28), CIFAR (32x32)."""

from __future__ import annotations

import convolve as cv
from convolve import nn
from convolve.models._blocks import classifier_head
from convolve.models._registry import register_model
from convolve.models.resnet import conv3x3
from convolve.models.vgg import make_vgg_features
from convolve.tensor import Tensor


class DigitsCNN(nn.Module):
    """For the bundled 8x8 digits: conv3x3 16 -> conv3x3 32 -> 2x2 max pool -> FC 64 -> FC classes (38k params)."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),  # (N, 16, 8, 8)
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),  # (N, 32, 8, 8)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 32, 4, 4)
        )
        self.flatten = nn.Flatten()  # (N, 512)
        self.classifier = classifier_head(32 * 4 * 4, (64,), num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


class MnistCNN(nn.Module):
    """For 28x28 digits: conv3x3 32 -> pool -> conv3x3 64 -> pool -> FC 128 -> dropout -> FC classes."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.25) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),  # (N, 32, 28, 28)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 32, 14, 14)
            nn.Conv2d(32, 64, kernel_size=3, padding=1),  # (N, 64, 14, 14)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 64, 7, 7)
        )
        self.flatten = nn.Flatten()  # (N, 3136)
        self.classifier = classifier_head(64 * 7 * 7, (128,), num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


class VGGSmall(nn.Module):
    """A small VGG for CIFAR 3x32x32: conv64-64-pool-128-128-pool-256-pool-fc (3x3 convs, padding 1)."""

    def __init__(self, num_classes: int = 10, batch_norm: bool = False) -> None:
        super().__init__()
        self.features = make_vgg_features([64, 64, "M", 128, 128, "M", 256, "M"], batch_norm)  # (N, 256, 4, 4)
        self.flatten = nn.Flatten()  # (N, 4096)
        self.fc = nn.Linear(256 * 4 * 4, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(self.features(x)))


class ShortcutA(nn.Module):
    """He et al.'s CIFAR shortcut "option A": subsample by `stride`, then zero-pad the new channels (no params)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.in_planes, self.planes, self.stride = in_planes, planes, stride
        self.kernel_size, self.padding, self.out_channels = 1, 0, planes  # geometry, for convolve.inspect

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (N, in_planes, H/s, W/s)
        extra = self.planes - self.in_planes
        if extra <= 0:
            return x
        n, _, h, w = x.shape
        before = cv.zeros(n, extra // 2, h, w, dtype=x.dtype)
        after = cv.zeros(n, extra - extra // 2, h, w, dtype=x.dtype)
        return cv.cat([before, x, after], dim=1)  # (N, planes, H/s, W/s)


class CifarBasicBlock(nn.Module):
    """ResNet basic block for CIFAR (same keys as torchvision's BasicBlock, parameter-free shortcut)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = ShortcutA(in_planes, planes, stride) if stride != 1 or in_planes != planes else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet-(6n+2): 3x3 conv 16, three stages of n blocks (16, 32, 64 channels), pool, fc."""

    def __init__(self, n: int, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = conv3x3(3, 16)  # (N, 16, 32, 32)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        in_planes = 16
        stages = []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):  # 32x32, 16x16, 8x8
            blocks = [CifarBasicBlock(in_planes, planes, stride)]
            blocks += [CifarBasicBlock(planes, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            in_planes = planes
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model(input_size=(1, 8, 8), num_classes=10, family="small")
def digits_cnn(num_classes: int = 10, dropout: float = 0.0) -> DigitsCNN:
    """Tiny CNN for the bundled 8x8 digits (the default model of `convolve train`)."""
    return DigitsCNN(num_classes, dropout)


@register_model(input_size=(1, 28, 28), num_classes=10, family="small")
def mnist_cnn(num_classes: int = 10, dropout: float = 0.25) -> MnistCNN:
    """Two-conv CNN for MNIST / Fashion-MNIST (1x28x28)."""
    return MnistCNN(num_classes, dropout)


@register_model(input_size=(3, 32, 32), num_classes=10, family="small")
def vgg_small(num_classes: int = 10, batch_norm: bool = False) -> VGGSmall:
    """Small VGG for CIFAR-10 (3x32x32): conv64-64-pool-128-128-pool-256-pool-fc."""
    return VGGSmall(num_classes, batch_norm)


@register_model(input_size=(3, 32, 32), num_classes=10, family="resnet")
def resnet20(num_classes: int = 10) -> CifarResNet:
    """CIFAR ResNet-20 (He et al. 2015, option-A shortcuts): 269,722 parameters."""
    return CifarResNet(3, num_classes)
