"""Neural-network layers (`convolve.nn`) and the stateless ops behind them (`convolve.nn.functional`).

Layers mirror `torch.nn`: same class names, argument names, defaults, attribute names, parameter shapes,
default initialization and state_dict keys, so PyTorch habits and checkpoints transfer.
"""

from convolve import _missing
from convolve.nn import functional, init, utils
from convolve.nn.activation import (
    ELU,
    GELU,
    Hardswish,
    LeakyReLU,
    LogSoftmax,
    Mish,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from convolve.nn.container import ModuleDict, ModuleList, Sequential
from convolve.nn.conv import Conv1d, Conv2d, ConvTranspose2d
from convolve.nn.dropout import Dropout, Dropout2d
from convolve.nn.flatten import Flatten
from convolve.nn.linear import Identity, Linear
from convolve.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from convolve.nn.module import Module, RemovableHandle
from convolve.nn.norm import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from convolve.nn.normalization import GroupNorm, LayerNorm
from convolve.nn.parameter import Parameter
from convolve.nn.pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from convolve.nn.simple_layers import (
    AdaptiveAvgPool1d,
    AdaptiveMaxPool1d,
    ConstantPad2d,
    Dropout1d,
    Embedding,
    InstanceNorm2d,
    KLDivLoss,
    ReflectionPad2d,
    ReplicationPad2d,
    Unflatten,
    ZeroPad2d,
)
from convolve.nn.sync_batchnorm import SyncBatchNorm
from convolve.nn.upsample import Upsample

__all__ = [
    "ELU",
    "GELU",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "ConstantPad2d",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "CrossEntropyLoss",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Embedding",
    "Flatten",
    "GroupNorm",
    "Hardswish",
    "HuberLoss",
    "Identity",
    "InstanceNorm2d",
    "KLDivLoss",
    "L1Loss",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LocalResponseNorm",
    "LogSoftmax",
    "MSELoss",
    "MaxPool1d",
    "MaxPool2d",
    "Mish",
    "Module",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "PReLU",
    "Parameter",
    "ReLU",
    "ReLU6",
    "ReflectionPad2d",
    "RemovableHandle",
    "ReplicationPad2d",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "SmoothL1Loss",
    "Softmax",
    "Softplus",
    "SyncBatchNorm",
    "Tanh",
    "Unflatten",
    "Upsample",
    "ZeroPad2d",
    "functional",
    "init",
    "utils",
]


def __getattr__(name: str) -> object:
    """A PyTorch name convolve lacks: an AttributeError saying so and what to do instead."""
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    raise _missing.missing("module 'convolve.nn'", name, f"torch.nn.{name}")
