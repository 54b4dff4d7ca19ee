"""PyTorch twins of the convolve zoo models used by bench_train.py (same layers, same state_dict keys/shapes).

    from torch_twins import build
    model = build("vgg_small")            # torch.nn.Module; convolve's get_model("vgg_small") loads its state_dict

Benchmark-only code: PyTorch is the yardstick, never a dependency of the library.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NAMES", "build"]


class LeNet5(nn.Module):
    """convolve.models.lenet5 (tanh, full C3): c1 5x5 6 -> avgpool -> c3 5x5 16 -> avgpool -> c5 120 -> f6 84 -> 10."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)
        self.act1 = nn.Tanh()
        self.s2 = nn.AvgPool2d(2)
        self.c3 = nn.Conv2d(6, 16, kernel_size=5)
        self.act3 = nn.Tanh()
        self.s4 = nn.AvgPool2d(2)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)
        self.act5 = nn.Tanh()
        self.flatten = nn.Flatten()
        self.f6 = nn.Linear(120, 84)
        self.act6 = nn.Tanh()
        self.output = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.s2(self.act1(self.c1(x)))
        x = self.s4(self.act3(self.c3(x)))
        x = self.flatten(self.act5(self.c5(x)))
        return self.output(self.act6(self.f6(x)))


class VGGSmall(nn.Module):
    """convolve.models.vgg_small: conv64-64-pool-128-128-pool-256-pool-fc, 3x3 convs with padding 1."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in (64, 64, "M", 128, 128, "M", 256, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU()]
            in_ch = int(v)
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(256 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.features(x)))


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class ShortcutA(nn.Module):
    """Option-A shortcut: subsample by `stride`, zero-pad the new channels (split before/after as convolve)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = planes - in_planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        before, after = self.extra // 2, self.extra - self.extra // 2
        return nn.functional.pad(x, (0, 0, 0, 0, before, after))


class BasicBlock(nn.Module):
    """convolve.models.small.CifarBasicBlock."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = ShortcutA(in_planes, planes, stride) if stride != 1 or in_planes != planes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """convolve.models.resnet20 (n=3): conv 16, stages of 16/32/64 channels, global average pool, fc."""

    def __init__(self, n: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = _conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        in_planes, stages = 16, []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [BasicBlock(in_planes, planes, stride)] + [BasicBlock(planes, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            in_planes = planes
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


NAMES = {"lenet5": LeNet5, "vgg_small": VGGSmall, "resnet20": CifarResNet}


def build(name: str, num_classes: int = 10) -> nn.Module:
    """The PyTorch twin of convolve.models.get_model(`name`) with identical state_dict keys and shapes."""
    if name not in NAMES:
        raise ValueError(f"build: no PyTorch twin for {name!r}; known: {sorted(NAMES)}")
    return NAMES[name](num_classes=num_classes)


if __name__ == "__main__":  # self-check: keys and shapes equal to the convolve models, and same outputs
    import numpy as np

    import convolve as cv
    from convolve.models import get_model

    for net, size in (("lenet5", (1, 32, 32)), ("vgg_small", (3, 32, 32)), ("resnet20", (3, 32, 32))):
        twin, ours = build(net).double(), get_model(net, num_classes=10)
        sd = {k: v.detach().numpy() for k, v in twin.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in sd.items()}
        mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        assert theirs == mine, (net, set(theirs) ^ set(mine))
        ours.double().load_state_dict(sd)
        x = np.random.default_rng(0).standard_normal((4, *size))
        out_t = twin(torch.tensor(x)).detach().numpy()
        out_c = ours(cv.tensor(x)).numpy()
        print(net, "keys match;", "max |diff|", float(np.abs(out_t - out_c).max()))
