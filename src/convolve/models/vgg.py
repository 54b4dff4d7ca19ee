"""VGG (Simonyan & Zisserman 2014): only 3x3/1/1 convolutions and 2x2/2 max pooling, configurations A, B, D, E.

Same module layout and state_dict keys as torchvision (`features.N`, `classifier.0/3/6`), with
`AdaptiveAvgPool2d((7, 7))` before the classifier so other input sizes work; 224x224x3 is native.
VGG-11 132,863,336 parameters, VGG-13 133,047,848, VGG-16 138,357,544, VGG-19 143,667,240; with
BatchNorm after each conv (`_bn`), 2 x channels more each (VGG-16-BN 138,365,992, not counting
BatchNorm's running statistics, which are buffers).
"""

from __future__ import annotations

from convolve import nn
from convolve.models._blocks import classifier_head
from convolve.models._registry import register_model
from convolve.tensor import Tensor

# Output channels of each 3x3 conv; "M" is a 2x2/2 max pooling (Table 1 of the paper).
VGG_CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_vgg_features(config: list[int | str], batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    """The convolutional part of a VGG configuration: conv3x3 [+ BN] + ReLU per number, max pool per "M"."""
    layers: list[nn.Module] = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        assert isinstance(v, int)
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """A VGG network: `features`, `avgpool` to 7x7, `classifier` (4096, 4096, classes) with dropout."""

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))  # (N, 512, 7, 7)
        self.flatten = nn.Flatten()  # (N, 25088)
        self.classifier = classifier_head(512 * 7 * 7, (4096, 4096), num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


def _vgg(config: str, batch_norm: bool, num_classes: int, dropout: float) -> VGG:
    return VGG(make_vgg_features(VGG_CONFIGS[config], batch_norm), num_classes=num_classes, dropout=dropout)


@register_model(input_size=(3, 224, 224), num_classes=1000, family="vgg")
def vgg11(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-11 (configuration A): 132,863,336 parameters."""
    return _vgg("A", False, num_classes, dropout)


@register_model(input_size=(3, 224, 224), num_classes=1000, family="vgg")
def vgg13(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-13 (configuration B): 133,047,848 parameters."""
    return _vgg("B", False, num_classes, dropout)


@register_model(input_size=(3, 224, 224), num_classes=1000, family="vgg")
def vgg16(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-16 (configuration D): 138,357,544 parameters."""
    return _vgg("D", False, num_classes, dropout)


@register_model(input_size=(3, 224, 224), num_classes=1000, family="vgg")
def vgg19(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-19 (configuration E): 143,667,240 parameters."""
    return _vgg("E", False, num_classes, dropout)


@register_model(input_size=(3, 224, 224), num_classes=1000, family="vgg")
def vgg11_bn(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-11 with BatchNorm after each conv: 132,868,840 parameters."""
    return _vgg("A", True, num_classes, dropout)


@register_model(input_size=(3, 224, 224), num_classes=1000, family="vgg")
def vgg13_bn(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-13 with BatchNorm after each conv."""
    return _vgg("B", True, num_classes, dropout)


@register_model(input_size=(3, 224, 224), num_classes=1000, family="vgg")
def vgg16_bn(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-16 with BatchNorm after each conv: 138,365,992 parameters."""
    return _vgg("D", True, num_classes, dropout)


@register_model(input_size=(3, 224, 224), num_classes=1000, family="vgg")
def vgg19_bn(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-19 with BatchNorm after each conv."""
    return _vgg("E", True, num_classes, dropout)
