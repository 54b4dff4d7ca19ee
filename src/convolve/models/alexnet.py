"""AlexNet (Krizhevsky, Sutskever, Hinton 2012) as in the paper, and torchvision's single-tower variant.

`alexnet` follows the paper's two-GPU network: 227x227x3 input (the paper says 224, but
(224 - 11) / 4 + 1 is not an integer; 227 gives its 55x55 maps), conv1 96@11x11/4, local response
normalisation after conv1 and conv2, overlapping 3x3/2 max pooling, conv2/4/5 split into two towers
(`groups=2`: each tower sees only its own half of the previous layer), conv3 and the FC layers
connected across towers, dropout 0.5 on the outputs of fc6 and fc7: 60,965,224 parameters.

The paper's LRN is b = a / (k + alpha * sum(a^2))^beta with k=2, n=5, alpha=1e-4, beta=0.75. PyTorch's
`LocalResponseNorm(size, alpha, beta, k)` divides alpha by `size`, so the paper's alpha becomes
`alpha=1e-4 * 5` here.

`alexnet_torchvision` is torchvision's variant ("one weird trick": 64/192/384/256/256 filters,
padding 2 on conv1, no LRN, adaptive 6x6 average pooling, dropout before fc6 and fc7), with the same
state_dict keys and shapes: 61,100,840 parameters, 224x224 input.
"""

from __future__ import annotations

from convolve import nn
from convolve.models._blocks import classifier_head
from convolve.models._registry import register_model
from convolve.tensor import Tensor


def paper_lrn() -> nn.LocalResponseNorm:
    """The paper's LRN (k=2, n=5, alpha=1e-4, beta=0.75) in PyTorch's convention, which divides alpha by n."""
    n, alpha = 5, 1e-4
    return nn.LocalResponseNorm(size=n, alpha=alpha * n, beta=0.75, k=2.0)


class AlexNet(nn.Module):
    """The paper's AlexNet: `features` (5 convs), then `classifier` (3 FC layers) on 256x6x6 maps."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=11, stride=4),  # (N, 96, 55, 55)
            nn.ReLU(),
            paper_lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 96, 27, 27)
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),  # (N, 256, 27, 27)
            nn.ReLU(),
            paper_lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 256, 13, 13)
            nn.Conv2d(256, 384, kernel_size=3, padding=1),  # (N, 384, 13, 13), across towers
            nn.ReLU(),
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 256, 6, 6)
        )
        self.flatten = nn.Flatten()  # (N, 9216)
        self.classifier = classifier_head(256 * 6 * 6, (4096, 4096), num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


class AlexNetTorchvision(nn.Module):
    """torchvision's AlexNet: same keys (features.N, classifier.N) and shapes as `torchvision.models.alexnet`."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # (N, 64, 55, 55)
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 64, 27, 27)
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 192, 13, 13)
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 256, 6, 6)
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.flatten = nn.Flatten()
        self.classifier = classifier_head(256 * 6 * 6, (4096, 4096), num_classes, dropout, dropout_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


@register_model(input_size=(3, 227, 227), num_classes=1000, family="alexnet")
def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """AlexNet as in the paper (two towers, LRN, 227x227): 60,965,224 parameters."""
    return AlexNet(num_classes=num_classes, dropout=dropout)


@register_model(input_size=(3, 224, 224), num_classes=1000, family="alexnet")
def alexnet_torchvision(num_classes: int = 1000, dropout: float = 0.5) -> AlexNetTorchvision:
    """torchvision's AlexNet variant (no LRN, one tower, 224x224): 61,100,840 parameters."""
    return AlexNetTorchvision(num_classes=num_classes, dropout=dropout)
