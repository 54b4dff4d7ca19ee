"""Shared layer specifications and helpers for tests/test_layers.py and tests/test_conformance.py.

Each `Spec` builds the same layer from either library (`make(lib)` with lib.nn = torch.nn or convolve.nn), says
which input it takes and which output shape the documented formula predicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import convolve as cv
import convolve.nn as cnn


@dataclass(frozen=True)
class Lib:
    nn: Any
    tensor: Callable[[Any], Any]


CV = Lib(cnn, lambda a: cv.tensor(np.asarray(a, dtype=np.float64)))
TH = Lib(torch.nn, lambda a: torch.tensor(np.asarray(a, dtype=np.float64)))


@dataclass(frozen=True)
class Spec:
    id: str
    make: Callable[[Lib], Any]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    target: Callable[[np.random.Generator], np.ndarray] | None = None  # losses: the second forward argument
    random: bool = False  # dropout: output depends on the generator in training mode
    scale: float = 1.0  # input scale (ReLU6 needs values beyond 6)
    tags: tuple[str, ...] = field(default=())


def conv_out(n: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """floor((n + 2p - d(k-1) - 1) / s) + 1."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out(n: int, k: int, s: int, p: int = 0, d: int = 1, ceil: bool = False) -> int:
    """PyTorch's pooling size; with ceil_mode the last window must start inside the (left-padded) input."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def tconv_out(n: int, k: int, s: int = 1, p: int = 0, op: int = 0, d: int = 1) -> int:
    """(n - 1)s - 2p + d(k-1) + op + 1."""
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def _classes(n: int, c: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.integers(0, c, size=n)


def _nll_target(rng: np.random.Generator) -> np.ndarray:
    return np.array([0, 1, 2, 1, 3])  # contains the ignored class 1


SPECS: list[Spec] = [
    Spec("Conv1d", lambda L: L.nn.Conv1d(3, 4, 3), (2, 3, 7), (2, 4, conv_out(7, 3))),
    Spec("Conv1d-s2p1g2-nobias", lambda L: L.nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2, bias=False),
         (1, 4, 8), (1, 6, conv_out(8, 3, 2, 1))),
    Spec("Conv1d-same-circular", lambda L: L.nn.Conv1d(3, 2, 4, padding="same", padding_mode="circular"),
         (2, 3, 6), (2, 2, 6)),
    Spec("Conv2d", lambda L: L.nn.Conv2d(3, 4, 3), (2, 3, 6, 5), (2, 4, conv_out(6, 3), conv_out(5, 3))),
    Spec("Conv2d-grouped-dilated",
         lambda L: L.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
         (1, 4, 7, 6), (1, 6, conv_out(7, 3, 2, 1), conv_out(6, 2, 1, 0, 2))),
    Spec("Conv2d-same-even", lambda L: L.nn.Conv2d(3, 4, 4, padding="same"), (2, 3, 5, 6), (2, 4, 5, 6)),
    Spec("Conv2d-same-dilated", lambda L: L.nn.Conv2d(2, 3, 3, padding="same", dilation=2), (1, 2, 7, 7),
         (1, 3, 7, 7)),
    Spec("Conv2d-valid-nobias", lambda L: L.nn.Conv2d(2, 3, 3, padding="valid", bias=False), (2, 2, 5, 5),
         (2, 3, 3, 3)),
    Spec("Conv2d-reflect", lambda L: L.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (2, 3, 5, 4),
         (2, 4, 5, 4)),
    Spec("Conv2d-replicate", lambda L: L.nn.Conv2d(3, 4, 3, stride=2, padding=(2, 1), padding_mode="replicate"),
         (1, 3, 5, 6), (1, 4, conv_out(5, 3, 2, 2), conv_out(6, 3, 2, 1))),
    Spec("Conv2d-circular", lambda L: L.nn.Conv2d(2, 4, 3, padding=1, padding_mode="circular", groups=2),
         (2, 2, 4, 5), (2, 4, 4, 5)),
    Spec("ConvTranspose2d", lambda L: L.nn.ConvTranspose2d(3, 4, 3), (2, 3, 4, 5),
         (2, 4, tconv_out(4, 3), tconv_out(5, 3))),
    Spec("ConvTranspose2d-s2-op-groups",
         lambda L: L.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
         (1, 4, 3, 4), (1, 6, tconv_out(3, 3, 2, 1, 1), tconv_out(4, 3, 2, 1, 1))),
    Spec("ConvTranspose2d-dilated-nobias", lambda L: L.nn.ConvTranspose2d(2, 3, 2, stride=2, dilation=2, bias=False),
         (2, 2, 3, 3), (2, 3, tconv_out(3, 2, 2, 0, 0, 2), tconv_out(3, 2, 2, 0, 0, 2))),
    Spec("Linear", lambda L: L.nn.Linear(5, 3), (4, 5), (4, 3)),
    Spec("Linear-3d-nobias", lambda L: L.nn.Linear(5, 2, bias=False), (2, 3, 5), (2, 3, 2)),
    Spec("MaxPool1d", lambda L: L.nn.MaxPool1d(2), (2, 3, 7), (2, 3, pool_out(7, 2, 2))),
    Spec("MaxPool1d-ceil", lambda L: L.nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 8),
         (2, 3, pool_out(8, 3, 2, 1, ceil=True))),
    Spec("MaxPool2d", lambda L: L.nn.MaxPool2d(2), (2, 3, 6, 5), (2, 3, 3, 2)),
    Spec("MaxPool2d-overlap-ceil", lambda L: L.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (1, 2, 6, 7),
         (1, 2, pool_out(6, 3, 2, 1, ceil=True), pool_out(7, 3, 2, 1, ceil=True))),
    Spec("MaxPool2d-dilated", lambda L: L.nn.MaxPool2d((2, 3), stride=(1, 2), dilation=(2, 1)), (1, 2, 6, 7),
         (1, 2, pool_out(6, 2, 1, 0, 2), pool_out(7, 3, 2))),
    Spec("AvgPool1d", lambda L: L.nn.AvgPool1d(3, stride=2, padding=1), (2, 3, 8), (2, 3, pool_out(8, 3, 2, 1))),
    Spec("AvgPool2d", lambda L: L.nn.AvgPool2d(2), (2, 3, 6, 5), (2, 3, 3, 2)),
    Spec("AvgPool2d-nopad-count-ceil",
         lambda L: L.nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), (1, 2, 6, 7),
         (1, 2, pool_out(6, 3, 2, 1, ceil=True), pool_out(7, 3, 2, 1, ceil=True))),
    Spec("AvgPool2d-divisor", lambda L: L.nn.AvgPool2d(2, divisor_override=3), (1, 2, 4, 4), (1, 2, 2, 2)),
    Spec("AdaptiveAvgPool2d", lambda L: L.nn.AdaptiveAvgPool2d((2, 3)), (2, 3, 5, 7), (2, 3, 2, 3)),
    Spec("AdaptiveAvgPool2d-global", lambda L: L.nn.AdaptiveAvgPool2d(1), (2, 3, 4, 5), (2, 3, 1, 1)),
    Spec("AdaptiveMaxPool2d", lambda L: L.nn.AdaptiveMaxPool2d((3, 2)), (2, 3, 7, 5), (2, 3, 3, 2)),
    Spec("ReLU", lambda L: L.nn.ReLU(), (2, 3, 4), (2, 3, 4)),
    Spec("ReLU6", lambda L: L.nn.ReLU6(), (2, 3, 4), (2, 3, 4), scale=5.0),
    Spec("LeakyReLU", lambda L: L.nn.LeakyReLU(0.2), (2, 3, 4), (2, 3, 4)),
    Spec("ELU", lambda L: L.nn.ELU(alpha=0.7), (2, 3, 4), (2, 3, 4)),
    Spec("Sigmoid", lambda L: L.nn.Sigmoid(), (2, 3, 4), (2, 3, 4)),
    Spec("Tanh", lambda L: L.nn.Tanh(), (2, 3, 4), (2, 3, 4)),
    Spec("Softmax", lambda L: L.nn.Softmax(dim=1), (2, 3, 4), (2, 3, 4)),
    Spec("LogSoftmax", lambda L: L.nn.LogSoftmax(dim=-1), (2, 3, 4), (2, 3, 4)),
    Spec("Dropout", lambda L: L.nn.Dropout(0.3), (2, 3, 4), (2, 3, 4), random=True),
    Spec("Dropout2d", lambda L: L.nn.Dropout2d(0.3), (2, 3, 4, 4), (2, 3, 4, 4), random=True),
    Spec("BatchNorm1d", lambda L: L.nn.BatchNorm1d(3), (4, 3), (4, 3)),
    Spec("BatchNorm1d-3d-cumulative", lambda L: L.nn.BatchNorm1d(3, affine=False, momentum=None), (4, 3, 5),
         (4, 3, 5)),
    Spec("BatchNorm2d", lambda L: L.nn.BatchNorm2d(3, momentum=0.3), (2, 3, 4, 5), (2, 3, 4, 5)),
    Spec("BatchNorm2d-untracked", lambda L: L.nn.BatchNorm2d(3, track_running_stats=False), (2, 3, 3, 3),
         (2, 3, 3, 3)),
    Spec("BatchNorm2d-nobias", lambda L: L.nn.BatchNorm2d(3, eps=1e-3, bias=False), (2, 3, 3, 3), (2, 3, 3, 3)),
    Spec("SyncBatchNorm", lambda L: L.nn.SyncBatchNorm(3, momentum=0.3), (2, 3, 4, 5), (2, 3, 4, 5)),
    Spec("LocalResponseNorm", lambda L: L.nn.LocalResponseNorm(3), (2, 5, 3, 3), (2, 5, 3, 3)),
    Spec("LocalResponseNorm-alexnet", lambda L: L.nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0),
         (2, 6, 3, 3), (2, 6, 3, 3)),
    Spec("Flatten", lambda L: L.nn.Flatten(), (2, 3, 4, 5), (2, 60)),
    Spec("Flatten-0-2", lambda L: L.nn.Flatten(0, 2), (2, 3, 4, 5), (24, 5)),
    Spec("Identity", lambda L: L.nn.Identity(), (2, 3), (2, 3)),
    Spec("CrossEntropyLoss", lambda L: L.nn.CrossEntropyLoss(), (5, 4), (), target=_classes(5, 4)),
    Spec("CrossEntropyLoss-weighted-smooth-sum",
         lambda L: L.nn.CrossEntropyLoss(weight=L.tensor([0.5, 1.0, 2.0, 1.5]), label_smoothing=0.1,
                                         reduction="sum"), (5, 4), (), target=_classes(5, 4)),
    Spec("NLLLoss-ignore", lambda L: L.nn.NLLLoss(ignore_index=1), (5, 4), (), target=_nll_target),
    Spec("MSELoss-none", lambda L: L.nn.MSELoss(reduction="none"), (3, 4), (3, 4),
         target=lambda rng: rng.standard_normal((3, 4))),
]
SPEC_IDS = [s.id for s in SPECS]


def build_pair(spec: Spec, dtype: Any) -> tuple[Any, Any]:
    """(ours, torch's) layer in `dtype`, ours loaded from torch's state_dict (which tests key compatibility)."""
    torch.manual_seed(0)
    theirs = spec.make(TH).to(torch.float64 if np.dtype(dtype) == np.float64 else torch.float32)
    ours = spec.make(CV).to(dtype)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def make_input(spec: Spec, dtype: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """A random input of the spec's shape and, for losses, its target."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(spec.in_shape) * spec.scale).astype(dtype)
    target = None if spec.target is None else spec.target(rng)
    if target is not None and target.dtype.kind == "f":
        target = target.astype(dtype)
    return x, target


def run_ours(layer: Any, x: np.ndarray, target: np.ndarray | None) -> tuple[cv.Tensor, cv.Tensor]:
    """(input tensor requiring grad, output)."""
    xt = cv.tensor(x, requires_grad=True)
    out = layer(xt) if target is None else layer(xt, cv.tensor(target))
    return xt, out


def run_theirs(layer: Any, x: np.ndarray, target: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
    xt = torch.tensor(x, requires_grad=True)
    out = layer(xt) if target is None else layer(xt, torch.tensor(target))
    return xt, out
