"""The model zoo: LeNet-5 to Inception-v2/v3 and ResNet, plus small CPU-friendly networks.

`list_models()` names them, `get_model(name, num_classes=..., **options)` builds one, and every model is
also a function here (`convolve.models.resnet18(num_classes=10)`). Each built model carries
`input_size = (C, H, W)`, the size it was designed for; `model_spec(name)` gives it without building.
"""

from convolve.models._registry import ModelSpec, get_model, list_models, model_spec, register_model
from convolve.models.alexnet import AlexNet, AlexNetTorchvision, alexnet, alexnet_torchvision
from convolve.models.googlenet import BasicConv2d, GoogLeNet, GoogLeNetOutputs, Inception, googlenet
from convolve.models.inception import (
    Inception3,
    InceptionBlockV2,
    InceptionOutputs,
    InceptionV2,
    inception_v2,
    inception_v3,
)
from convolve.models.lenet import LENET5_C3_TABLE, LeNet5, PartialConv2d, lenet5
from convolve.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from convolve.models.small import CifarResNet, DigitsCNN, MnistCNN, VGGSmall, digits_cnn, mnist_cnn, resnet20, vgg_small
from convolve.models.vgg import (
    VGG,
    vgg11,
    vgg11_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg19,
    vgg19_bn,
)
from convolve.models.zfnet import ZFNet, zfnet

__all__ = [
    "LENET5_C3_TABLE",
    "VGG",
    "AlexNet",
    "AlexNetTorchvision",
    "BasicBlock",
    "BasicConv2d",
    "Bottleneck",
    "CifarResNet",
    "DigitsCNN",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "Inception",
    "Inception3",
    "InceptionBlockV2",
    "InceptionOutputs",
    "InceptionV2",
    "LeNet5",
    "MnistCNN",
    "ModelSpec",
    "PartialConv2d",
    "ResNet",
    "VGGSmall",
    "ZFNet",
    "alexnet",
    "alexnet_torchvision",
    "digits_cnn",
    "get_model",
    "googlenet",
    "inception_v2",
    "inception_v3",
    "lenet5",
    "list_models",
    "mnist_cnn",
    "model_spec",
    "register_model",
    "resnet18",
    "resnet20",
    "resnet34",
    "resnet50",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "vgg_small",
    "zfnet",
]
