"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998): the first convolutional network trained end to end.

Geometry (input 1x32x32): C1 6@28x28 (5x5 conv, 156 params) -> S2 6@14x14 (2x2 subsampling)
-> C3 16@10x10 (5x5 conv: 2,416 params fully connected, 1,516 with the paper's connection table)
-> S4 16@5x5 -> C5 120@1x1 (5x5 conv, 48,120) -> F6 84 (10,164) -> output 10 (850).

Differences from the paper, on purpose: S2/S4 are plain average pooling (the paper's subsampling also
multiplies by a trainable coefficient and adds a trainable bias per map, 12 and 32 parameters); the
activation is plain `tanh` (the paper uses 1.7159 tanh(2a/3)) or `relu`; the output layer is a
`Linear` layer (the paper uses Euclidean RBF units with fixed weights).
"""

from __future__ import annotations

import numpy as np

import convolve as cv
import convolve.nn.functional as F
from convolve import nn
from convolve.models._registry import register_model
from convolve.tensor import Tensor

# Table I of the paper: which of S2's 6 maps feed each of C3's 16 maps. Columns 0-5 read 3 contiguous maps,
# 6-11 read 4 contiguous maps, 12-14 read 4 non-contiguous maps, 15 reads all 6.
LENET5_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class PartialConv2d(nn.Module):
    """A conv whose output map `o` reads only the input maps listed in `connections[o]` (LeNet-5's C3).

    Only the connected (output, input) kernels are parameters: `weight` has shape
    (number of connections, kh, kw), so the parameter count is the paper's (1,516 for C3). The dense
    (out, in, kh, kw) kernel is gathered from it, with zeros for absent connections, and fed to
    `F.conv2d`; the gather's backward routes the gradient to the connected kernels only.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 connections: tuple[tuple[int, ...], ...], bias: bool = True) -> None:
        super().__init__()
        if len(connections) != out_channels:
            raise ValueError(f"PartialConv2d: `connections` must list the inputs of each of the {out_channels} "
                             f"output maps, got {len(connections)} entries")
        for o, ins in enumerate(connections):
            if not ins or any(not 0 <= i < in_channels for i in ins) or len(set(ins)) != len(ins):
                raise ValueError(f"PartialConv2d: `connections[{o}]` must be distinct input maps in "
                                 f"[0, {in_channels}), got {ins}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kernel_size, kernel_size)
        self.stride, self.padding, self.dilation, self.groups = (1, 1), (0, 0), (1, 1), 1  # geometry, for inspect
        self.connections = connections
        n = sum(len(ins) for ins in connections)
        index = np.full((out_channels, in_channels), n, dtype=np.int64)  # n points at the appended zero kernel
        k = 0
        for o, ins in enumerate(connections):
            for i in ins:
                index[o, i] = k
                k += 1
        self._index = index  # (out, in) -> row of `weight` (or the zero row)
        fan_in = len(connections[0]) * kernel_size * kernel_size
        bound = 1.0 / np.sqrt(fan_in)
        self.weight = nn.Parameter(cv.rand(n, kernel_size, kernel_size) * (2 * bound) - bound)
        self.bias = nn.Parameter(cv.rand(out_channels) * (2 * bound) - bound) if bias else None

    def dense_weight(self) -> Tensor:
        """The (out, in, kh, kw) kernel with zeros where the table has no connection."""
        zero = cv.zeros(1, *self.kernel_size, dtype=self.weight.dtype)
        return cv.cat([self.weight, zero], dim=0)[self._index]  # (out, in, kh, kw)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"connections={sum(len(c) for c in self.connections)}")


class LeNet5(nn.Module):
    """LeNet-5 on 1x32x32 inputs: C1, S2, C3, S4, C5, F6, output (names as in the paper)."""

    def __init__(self, num_classes: int = 10, activation: str = "tanh", partial_c3: bool = False) -> None:
        super().__init__()
        acts = {"tanh": nn.Tanh, "relu": nn.ReLU}
        if activation not in acts:
            raise ValueError(f"LeNet5: `activation` must be 'tanh' or 'relu', got {activation!r}")
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)  # (N, 6, 28, 28)
        self.act1 = acts[activation]()
        self.s2 = nn.AvgPool2d(2)  # (N, 6, 14, 14)
        self.c3 = PartialConv2d(6, 16, 5, LENET5_C3_TABLE) if partial_c3 else nn.Conv2d(6, 16, kernel_size=5)
        self.act3 = acts[activation]()  # c3: (N, 16, 10, 10)
        self.s4 = nn.AvgPool2d(2)  # (N, 16, 5, 5)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)  # (N, 120, 1, 1)
        self.act5 = acts[activation]()
        self.flatten = nn.Flatten()  # (N, 120)
        self.f6 = nn.Linear(120, 84)
        self.act6 = acts[activation]()
        self.output = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.s2(self.act1(self.c1(x)))
        x = self.s4(self.act3(self.c3(x)))
        x = self.flatten(self.act5(self.c5(x)))
        return self.output(self.act6(self.f6(x)))


@register_model(input_size=(1, 32, 32), num_classes=10, family="lenet")
def lenet5(num_classes: int = 10, activation: str = "tanh", partial_c3: bool = False) -> LeNet5:
    """LeNet-5 (LeCun et al. 1998), 1x32x32; `partial_c3=True` uses the paper's C3 connection table."""
    return LeNet5(num_classes=num_classes, activation=activation, partial_c3=partial_c3)
