"""Building blocks shared by several zoo models: the fully connected classifier head."""

from __future__ import annotations

from collections.abc import Sequence

from convolve import nn


def classifier_head(in_features: int, hidden: Sequence[int], num_classes: int, dropout: float,
                    dropout_first: bool = False) -> nn.Sequential:
    """Linear + ReLU + Dropout per `hidden` width, then Linear to `num_classes` (AlexNet / VGG / small CNNs).

    `dropout_first=True` puts each Dropout before its Linear instead of after its ReLU (torchvision's AlexNet).
    The layer order fixes the state_dict indices: (4096, 4096) gives `0, 3, 6`, or `1, 4, 6` with dropout first.
    """
    layers: list[nn.Module] = []
    for width in hidden:
        block: list[nn.Module] = [nn.Linear(in_features, width), nn.ReLU()]
        layers += [nn.Dropout(p=dropout), *block] if dropout_first else [*block, nn.Dropout(p=dropout)]
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)
