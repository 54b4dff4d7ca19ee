"""Neural-network layers (`convolve.nn`) and the stateless ops behind them (`convolve.nn.functional`).

Layers mirror `torch.nn`: same class names, argument names, defaults, attribute names, parameter shapes,
default initialization and state_dict keys, so PyTorch habits and checkpoints transfer.
"""

from convolve.nn import functional, init, utils
from convolve.nn.activation import ELU, LeakyReLU, LogSoftmax, ReLU, ReLU6, Sigmoid, Softmax, Tanh
from convolve.nn.container import ModuleDict, ModuleList, Sequential
from convolve.nn.conv import Conv1d, Conv2d, ConvTranspose2d
from convolve.nn.dropout import Dropout, Dropout2d
from convolve.nn.flatten import Flatten
from convolve.nn.linear import Identity, Linear
from convolve.nn.loss import CrossEntropyLoss, MSELoss, NLLLoss
from convolve.nn.module import Module, RemovableHandle
from convolve.nn.norm import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from convolve.nn.parameter import Parameter
from convolve.nn.pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from convolve.nn.sync_batchnorm import SyncBatchNorm

__all__ = [
    "ELU",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "CrossEntropyLoss",
    "Dropout",
    "Dropout2d",
    "Flatten",
    "Identity",
    "LeakyReLU",
    "Linear",
    "LocalResponseNorm",
    "LogSoftmax",
    "MSELoss",
    "MaxPool1d",
    "MaxPool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "ReLU",
    "ReLU6",
    "RemovableHandle",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SyncBatchNorm",
    "Tanh",
    "functional",
    "init",
    "utils",
]
