"""torchvision compatibility: reference networks written here in plain torch.nn (torchvision is not installed),
their state_dicts (every key, BatchNorm's num_batches_tracked included) loaded into ours, eval outputs compared
in float64. Inputs are smaller than native where adaptive pooling allows, to keep the run short."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn as tnn

import convolve as cv
import convolve.models as M
from tests.model_helpers import one_blas_thread  # noqa: F401 (autouse fixture)
from tests.oracle import assert_close


def seq(*layers: tnn.Module) -> tnn.Sequential:
    return tnn.Sequential(*layers)


# ----- reference networks (torchvision 0.29's module names) -----------------------------------------------------
def ref_alexnet() -> tnn.Module:
    m = tnn.Module()
    m.features = seq(tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(), tnn.MaxPool2d(3, 2), tnn.Conv2d(64, 192, 5, padding=2),
                     tnn.ReLU(), tnn.MaxPool2d(3, 2), tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(),
                     tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(), tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(),
                     tnn.MaxPool2d(3, 2))
    m.avgpool = tnn.AdaptiveAvgPool2d(6)
    m.classifier = seq(tnn.Dropout(), tnn.Linear(9216, 4096), tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, 4096),
                       tnn.ReLU(), tnn.Linear(4096, 1000))
    m.forward = lambda x: m.classifier(torch.flatten(m.avgpool(m.features(x)), 1))  # type: ignore[method-assign]
    return m


def ref_vgg11_bn() -> tnn.Module:
    layers: list[tnn.Module] = []
    c = 3
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(tnn.MaxPool2d(2, 2))
        else:
            layers += [tnn.Conv2d(c, v, 3, padding=1), tnn.BatchNorm2d(v), tnn.ReLU()]
            c = v
    m = tnn.Module()
    m.features, m.avgpool = seq(*layers), tnn.AdaptiveAvgPool2d(7)
    m.classifier = seq(tnn.Linear(25088, 4096), tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, 4096), tnn.ReLU(),
                       tnn.Dropout(), tnn.Linear(4096, 1000))
    m.forward = lambda x: m.classifier(torch.flatten(m.avgpool(m.features(x)), 1))  # type: ignore[method-assign]
    return m


class RefBasicBlock(tnn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False), tnn.BatchNorm2d(cout)
        self.relu = tnn.ReLU()
        self.conv2, self.bn2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False), tnn.BatchNorm2d(cout)
        self.downsample = (seq(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + short)


class RefResNet18(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False), tnn.BatchNorm2d(64)
        self.relu, self.maxpool = tnn.ReLU(), tnn.MaxPool2d(3, 2, 1)
        self.layer1 = seq(RefBasicBlock(64, 64, 1), RefBasicBlock(64, 64, 1))
        self.layer2 = seq(RefBasicBlock(64, 128, 2), RefBasicBlock(128, 128, 1))
        self.layer3 = seq(RefBasicBlock(128, 256, 2), RefBasicBlock(256, 256, 1))
        self.layer4 = seq(RefBasicBlock(256, 512, 2), RefBasicBlock(512, 512, 1))
        self.avgpool, self.fc = tnn.AdaptiveAvgPool2d(1), tnn.Linear(512, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Conv(tnn.Module):
    """torchvision's BasicConv2d."""

    def __init__(self, cin: int, cout: int, k: int | tuple[int, int], s: int = 1,
                 p: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv, self.bn = tnn.Conv2d(cin, cout, k, s, p, bias=False), tnn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class RefInceptionV1(tnn.Module):
    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pp: int) -> None:
        super().__init__()
        self.branch1 = Conv(cin, c1, 1)
        self.branch2 = seq(Conv(cin, c3r, 1), Conv(c3r, c3, 3, p=1))
        self.branch3 = seq(Conv(cin, c5r, 1), Conv(c5r, c5, 3, p=1))
        self.branch4 = seq(tnn.MaxPool2d(3, 1, 1, ceil_mode=True), Conv(cin, pp, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class RefGoogLeNet(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.maxpool1 = Conv(3, 64, 7, 2, 3), tnn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.conv3 = Conv(64, 64, 1), Conv(64, 192, 3, p=1)
        self.maxpool2 = tnn.MaxPool2d(3, 2, ceil_mode=True)
        cfg = {"3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
               "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
               "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
               "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
               "5b": (832, 384, 192, 384, 48, 128, 128)}
        for name, args in cfg.items():
            setattr(self, "inception" + name, RefInceptionV1(*args))
            if name == "3b":
                self.maxpool3 = tnn.MaxPool2d(3, 2, ceil_mode=True)
            if name == "4e":
                self.maxpool4 = tnn.MaxPool2d(2, 2, ceil_mode=True)
        for name, cin in (("aux1", 512), ("aux2", 528)):
            aux = tnn.Module()
            aux.conv, aux.fc1, aux.fc2 = Conv(cin, 128, 1), tnn.Linear(2048, 1024), tnn.Linear(1024, 1000)
            setattr(self, name, aux)
        self.avgpool, self.dropout, self.fc = tnn.AdaptiveAvgPool2d(1), tnn.Dropout(0.2), tnn.Linear(1024, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # eval mode: the aux heads are not run
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        for name in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
            x = getattr(self, "inception" + name)(x)
            x = self.maxpool3(x) if name == "3b" else self.maxpool4(x) if name == "4e" else x
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Branches(tnn.Module):
    """A block given as named branches (lists of layer names) whose outputs are concatenated in order."""

    def __init__(self, convs: dict[str, tuple], plan: list[list[str]]) -> None:
        super().__init__()
        for name, args in convs.items():
            setattr(self, name, Conv(*args))
        self.plan = plan

    def run(self, x: torch.Tensor, step: str) -> torch.Tensor:
        if step == "avg":
            return torch.nn.functional.avg_pool2d(x, 3, 1, 1)
        if step == "max":
            return torch.nn.functional.max_pool2d(x, 3, 2)
        if "|" in step:  # two convs side by side on the same input, concatenated
            a, b = step.split("|")
            return torch.cat([getattr(self, a)(x), getattr(self, b)(x)], 1)
        return getattr(self, step)(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for branch in self.plan:
            y = x
            for step in branch:
                y = self.run(y, step)
            outs.append(y)
        return torch.cat(outs, 1)


def ref_mixed_a(cin: int, pool: int) -> Branches:
    return Branches({"branch1x1": (cin, 64, 1), "branch5x5_1": (cin, 48, 1), "branch5x5_2": (48, 64, 5, 1, 2),
                     "branch3x3dbl_1": (cin, 64, 1), "branch3x3dbl_2": (64, 96, 3, 1, 1),
                     "branch3x3dbl_3": (96, 96, 3, 1, 1), "branch_pool": (cin, pool, 1)},
                    [["branch1x1"], ["branch5x5_1", "branch5x5_2"],
                     ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], ["avg", "branch_pool"]])


def ref_mixed_c(c7: int) -> Branches:
    h, v = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))
    return Branches({"branch1x1": (768, 192, 1), "branch7x7_1": (768, c7, 1), "branch7x7_2": (c7, c7, *h),
                     "branch7x7_3": (c7, 192, *v), "branch7x7dbl_1": (768, c7, 1), "branch7x7dbl_2": (c7, c7, *v),
                     "branch7x7dbl_3": (c7, c7, *h), "branch7x7dbl_4": (c7, c7, *v),
                     "branch7x7dbl_5": (c7, 192, *h), "branch_pool": (768, 192, 1)},
                    [["branch1x1"], ["branch7x7_1", "branch7x7_2", "branch7x7_3"],
                     [f"branch7x7dbl_{i}" for i in range(1, 6)], ["avg", "branch_pool"]])


def ref_mixed_e(cin: int) -> Branches:
    h, v = ((1, 3), 1, (0, 1)), ((3, 1), 1, (1, 0))
    return Branches({"branch1x1": (cin, 320, 1), "branch3x3_1": (cin, 384, 1), "branch3x3_2a": (384, 384, *h),
                     "branch3x3_2b": (384, 384, *v), "branch3x3dbl_1": (cin, 448, 1),
                     "branch3x3dbl_2": (448, 384, 3, 1, 1), "branch3x3dbl_3a": (384, 384, *h),
                     "branch3x3dbl_3b": (384, 384, *v), "branch_pool": (cin, 192, 1)},
                    [["branch1x1"], ["branch3x3_1", "branch3x3_2a|branch3x3_2b"],
                     ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3a|branch3x3dbl_3b"], ["avg", "branch_pool"]])


class RefInception3(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3, self.Conv2d_2a_3x3 = Conv(3, 32, 3, 2), Conv(32, 32, 3)
        self.Conv2d_2b_3x3, self.maxpool1 = Conv(32, 64, 3, p=1), tnn.MaxPool2d(3, 2)
        self.Conv2d_3b_1x1, self.Conv2d_4a_3x3, self.maxpool2 = Conv(64, 80, 1), Conv(80, 192, 3), tnn.MaxPool2d(3, 2)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = ref_mixed_a(192, 32), ref_mixed_a(256, 64), ref_mixed_a(288, 64)
        self.Mixed_6a = Branches({"branch3x3": (288, 384, 3, 2), "branch3x3dbl_1": (288, 64, 1),
                                  "branch3x3dbl_2": (64, 96, 3, 1, 1), "branch3x3dbl_3": (96, 96, 3, 2)},
                                 [["branch3x3"], ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], ["max"]])
        self.Mixed_6b, self.Mixed_6c = ref_mixed_c(128), ref_mixed_c(160)
        self.Mixed_6d, self.Mixed_6e = ref_mixed_c(160), ref_mixed_c(192)
        aux = tnn.Module()
        aux.conv0, aux.conv1, aux.fc = Conv(768, 128, 1), Conv(128, 768, 5), tnn.Linear(768, 1000)
        self.AuxLogits = aux
        self.Mixed_7a = Branches({"branch3x3_1": (768, 192, 1), "branch3x3_2": (192, 320, 3, 2),
                                  "branch7x7x3_1": (768, 192, 1), "branch7x7x3_2": (192, 192, (1, 7), 1, (0, 3)),
                                  "branch7x7x3_3": (192, 192, (7, 1), 1, (3, 0)), "branch7x7x3_4": (192, 192, 3, 2)},
                                 [["branch3x3_1", "branch3x3_2"], [f"branch7x7x3_{i}" for i in range(1, 5)], ["max"]])
        self.Mixed_7b, self.Mixed_7c = ref_mixed_e(1280), ref_mixed_e(2048)
        self.fc = tnn.Linear(2048, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # eval mode
        for name, child in self.named_children():
            if name not in ("AuxLogits", "fc"):
                x = child(x)
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


# ----- the comparison ------------------------------------------------------------------------------------------
def randomize(ref: tnn.Module) -> None:
    """Random BatchNorm statistics and affine parameters, so that eval mode exercises every buffer."""
    g = torch.Generator().manual_seed(0)
    for m in ref.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.num_batches_tracked.fill_(7)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)


CASES: dict[str, tuple[Callable[[], tnn.Module], Callable[[], cv.nn.Module], int]] = {  # type: ignore[name-defined]
    "alexnet_torchvision": (ref_alexnet, M.alexnet_torchvision, 127),  # 3x3 maps adaptively pooled up to 6x6
    "vgg11_bn": (ref_vgg11_bn, M.vgg11_bn, 64),  # 2x2 maps adaptively pooled up to 7x7
    "resnet18": (RefResNet18, M.resnet18, 64),
    "googlenet": (RefGoogLeNet, M.googlenet, 64),
    "inception_v3": (RefInception3, M.inception_v3, 107),
}


@pytest.mark.parametrize("name", list(CASES))
def test_torchvision_state_dict_and_outputs(name: str) -> None:
    make_ref, make_ours, size = CASES[name]
    torch.manual_seed(0)
    ref = make_ref().double().eval()
    randomize(ref)
    ours = make_ours().double().eval()
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd), "state_dict keys (and their order) differ from torchvision's"
    assert all(tuple(our_sd[k].shape) == tuple(v.shape) for k, v in ref_sd.items())
    ours.load_state_dict(ref_sd)
    bn_counts = [k for k in our_sd if k.endswith("num_batches_tracked")]
    assert all(int(ours.state_dict()[k].numpy()) == 7 for k in bn_counts)
    x = np.random.default_rng(0).standard_normal((2, 3, size, size))
    with torch.no_grad():
        expected = ref(torch.tensor(x)).numpy()
    with cv.no_grad():
        got = ours(cv.tensor(x)).numpy()
    assert_close(got, expected, np.float64, f"{name} eval output")
