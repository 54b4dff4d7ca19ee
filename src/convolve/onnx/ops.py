"""The op table: which converter turns each `Function` of convolve into standard ONNX operators.

This is the only file that names the Function classes: adding an op, or renaming one, is a change here.
A converter returns the output's value name, or (name, keeps_batch) when it decides whether axis 0 of its output
is still the dynamic batch axis (otherwise: whenever an input's is).
"""

from __future__ import annotations

from typing import Any

from convolve.nn.functional import activation, norm, pool
from convolve.nn.functional.conv import Conv2dFunction, ConvTranspose2dFunction
from convolve.nn.functional.dropout import DropoutFunction
from convolve.nn.functional.linear import LinearFunction
from convolve.nn.functional.padding import PadFunction
from convolve.onnx import convert_nn as nn_ops
from convolve.onnx import convert_tensor as t_ops
from convolve.ops import elementwise, reduction, shape

CONVERTERS: dict[type, Any] = {
    # layers
    Conv2dFunction: nn_ops.conv,
    ConvTranspose2dFunction: nn_ops.conv_transpose,
    pool.MaxPool2dFunction: nn_ops.max_pool,
    pool.AvgPool2dFunction: nn_ops.avg_pool,
    pool.AdaptiveAvgPool2dFunction: nn_ops.adaptive_avg_pool,
    pool.AdaptiveMaxPool2dFunction: nn_ops.adaptive_max_pool,
    norm.BatchNormFunction: nn_ops.batch_norm,
    norm.LayerNormFunction: nn_ops.layer_norm,
    norm.LocalResponseNormFunction: nn_ops.local_response_norm,
    LinearFunction: nn_ops.linear,
    PadFunction: nn_ops.pad,
    DropoutFunction: t_ops.dropout,
    # activations
    activation.ReLUFunction: t_ops.unary("Relu"),
    activation.ReLU6Function: t_ops.relu6,
    activation.LeakyReLUFunction: t_ops.leaky_relu,
    activation.ELUFunction: t_ops.elu,
    activation.SigmoidFunction: t_ops.unary("Sigmoid"),
    activation.TanhFunction: t_ops.unary("Tanh"),
    activation.SiLUFunction: t_ops.silu,
    activation.GELUFunction: t_ops.gelu,
    activation.SoftmaxFunction: t_ops.softmax("Softmax"),
    activation.LogSoftmaxFunction: t_ops.softmax("LogSoftmax"),
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
