"""The op table: which converter turns each `Function` of convolve into standard ONNX operators.

This is the only file that names the Function classes: adding an op, or renaming one, is a change here.
A converter returns the output's value name, or (name, keeps_batch) when it decides whether axis 0 of its output
is still the dynamic batch axis (otherwise: whenever an input's is).
"""

from __future__ import annotations

from typing import Any

from convolve.nn.functional import activation, norm, pool
from convolve.nn.functional.conv import Conv2dFunction, ConvTranspose2dFunction
from convolve.nn.functional.dropout import Dropout
from convolve.nn.functional.linear import Linear
from convolve.nn.functional.padding import Pad
from convolve.onnx import convert_nn as nn_ops
from convolve.onnx import convert_tensor as t_ops
from convolve.ops import elementwise, reduction, shape

CONVERTERS: dict[type, Any] = {
    # layers
    Conv2dFunction: nn_ops.conv,
    ConvTranspose2dFunction: nn_ops.conv_transpose,
    pool.MaxPool2d: nn_ops.max_pool,
    pool.AvgPool2d: nn_ops.avg_pool,
    pool.AdaptiveAvgPool2d: nn_ops.adaptive_avg_pool,
    pool.AdaptiveMaxPool2d: nn_ops.adaptive_max_pool,
    norm.BatchNorm: nn_ops.batch_norm,
    norm.LayerNorm: nn_ops.layer_norm,
    norm.LocalResponseNorm: nn_ops.local_response_norm,
    Linear: nn_ops.linear,
    Pad: nn_ops.pad,
    Dropout: t_ops.dropout,
    # activations
    activation.ReLU: t_ops.unary("Relu"),
    activation.ReLU6: t_ops.relu6,
    activation.LeakyReLU: t_ops.leaky_relu,
    activation.ELU: t_ops.elu,
    activation.Sigmoid: t_ops.unary("Sigmoid"),
    activation.Tanh: t_ops.unary("Tanh"),
    activation.SiLU: t_ops.silu,
    activation.GELU: t_ops.gelu,
    activation.Softmax: t_ops.softmax("Softmax"),
    activation.LogSoftmax: t_ops.softmax("LogSoftmax"),
    # tensor arithmetic
    elementwise.Add: t_ops.binary("Add"),
    elementwise.Sub: t_ops.binary("Sub"),
    elementwise.Mul: t_ops.binary("Mul"),
    elementwise.Div: t_ops.binary("Div"),
    elementwise.Pow: t_ops.binary("Pow"),
    elementwise.MatMul: t_ops.binary("MatMul"),
    elementwise.Maximum: t_ops.binary("Max"),
    elementwise.Neg: t_ops.unary("Neg"),
    elementwise.Exp: t_ops.unary("Exp"),
    elementwise.Log: t_ops.unary("Log"),
    elementwise.Sqrt: t_ops.unary("Sqrt"),
    elementwise.Abs: t_ops.unary("Abs"),
    elementwise.Clamp: t_ops.clamp,
    elementwise.Where: t_ops.where,
    reduction.Sum: t_ops.reduction("ReduceSum"),
    reduction.Mean: t_ops.reduction("ReduceMean"),
    reduction.Max: t_ops.reduction("ReduceMax"),
    # shapes
    shape.Reshape: t_ops.reshape,
    shape.Permute: t_ops.permute,
    shape.BroadcastTo: t_ops.broadcast_to,
    shape.GetItem: t_ops.getitem,
    shape.Cast: t_ops.cast,
    shape.Concatenate: t_ops.concatenate,
    shape.Stack: t_ops.stack,
}
