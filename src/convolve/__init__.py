"""convolve: convolutional neural networks on NumPy, every backward pass written out and checked."""

from convolve import data, nn, optim
from convolve.autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from convolve.backend import get_default_dtype, set_default_dtype
from convolve.engines import get_engine, use_engine
from convolve.engines.workspace import get_num_threads, set_num_threads
from convolve.factory import (
    arange,
    from_numpy,
    full,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    zeros,
    zeros_like,
)
from convolve.functions import (
    abs,
    amax,
    amin,
    clamp,
    concat,
    concatenate,
    empty,
    exp,
    eye,
    is_tensor,
    linspace,
    log,
    matmul,
    maximum,
    mean,
    minimum,
    sqrt,
    sum,
    where,
)
from convolve.io import load, save
from convolve.ops.shape import cat, stack
from convolve.random import Generator, manual_seed
from convolve.safetensors_io import load_safetensors, save_safetensors
from convolve.tensor import Tensor, tensor

float32 = "float32"
float64 = "float64"

__version__ = "0.1.0"

__all__ = [
    "Function",
    "Generator",
    "Tensor",
    "__version__",
    "abs",
    "amax",
    "amin",
    "arange",
    "cat",
    "clamp",
    "concat",
    "concatenate",
    "data",
    "empty",
    "enable_grad",
    "exp",
    "eye",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "get_default_dtype",
    "get_engine",
    "get_num_threads",
    "is_grad_enabled",
    "is_tensor",
    "linspace",
    "load",
    "load_safetensors",
    "log",
    "manual_seed",
    "matmul",
    "maximum",
    "mean",
    "minimum",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "optim",
    "rand",
    "randint",
    "randn",
    "save",
    "save_safetensors",
    "set_default_dtype",
    "set_grad_enabled",
    "set_num_threads",
    "sqrt",
    "stack",
    "sum",
    "tensor",
    "use_engine",
    "where",
    "zeros",
    "zeros_like",
]
