"""ZFNet (Zeiler & Fergus 2013): AlexNet with a 7x7/2 first layer (instead of 11x11/4) and a 5x5/2 second.

Map sizes follow the paper's Figure 3 on 224x224x3 input: 110x110x96 -> pool 55x55 -> 26x26x256 -> pool
13x13 -> 384, 384, 256 @13x13 -> pool 6x6 -> 4096 -> 4096 -> classes. The paddings (1 on conv1, 1 on the
first two poolings) are the ones that reproduce those sizes; the network runs on one GPU (no groups).
Contrast normalisation after the first two layers uses AlexNet's LRN settings.
"""

from __future__ import annotations

from convolve import nn
from convolve.models._blocks import classifier_head
from convolve.models._registry import register_model
from convolve.models.alexnet import paper_lrn
from convolve.tensor import Tensor


class ZFNet(nn.Module):
    """ZFNet: `features` (5 convs) and `classifier` (3 FC layers), as AlexNet."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=7, stride=2, padding=1),  # (N, 96, 110, 110)
            nn.ReLU(),
            paper_lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # (N, 96, 55, 55)
            nn.Conv2d(96, 256, kernel_size=5, stride=2),  # (N, 256, 26, 26)
            nn.ReLU(),
            paper_lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # (N, 256, 13, 13)
            nn.Conv2d(256, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 256, 6, 6)
        )
        self.flatten = nn.Flatten()  # (N, 9216)
        self.classifier = classifier_head(256 * 6 * 6, (4096, 4096), num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register_model(input_size=(3, 224, 224), num_classes=1000, family="zfnet")
def zfnet(num_classes: int = 1000, dropout: float = 0.5) -> ZFNet:
    """ZFNet (Zeiler & Fergus 2013): 7x7/2 first layer on 224x224."""
    return ZFNet(num_classes=num_classes, dropout=dropout)
