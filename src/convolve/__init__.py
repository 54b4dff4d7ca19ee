"""convolve: convolutional neural networks on NumPy, every backward pass written out and checked."""

from importlib import import_module as _import_module
from importlib.util import find_spec as _find_spec

from convolve import _missing, autograd, backends, cuda, data, nn, optim, utils
from convolve._tensor_methods import (
    Size,
    allclose,
    bernoulli,
    empty_like,
    equal,
    flatten,
    full_like,
    isfinite,
    isnan,
    multinomial,
    numel,
    permute,
    rand_like,
    randn_like,
    randperm,
    reshape,
    set_printoptions,
    squeeze,
    transpose,
    unsqueeze,
    var,
)
from convolve._tensor_methods import chunk_fn as chunk
from convolve._tensor_methods import cumsum_fn as cumsum
from convolve._tensor_methods import flip_fn as flip
from convolve._tensor_methods import gather_fn as gather
from convolve._tensor_methods import sort_fn as sort
from convolve._tensor_methods import split_fn as split
from convolve._tensor_methods import std_fn as std
from convolve._tensor_methods import topk_fn as topk
from convolve.autograd import Function, enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from convolve.backend import get_default_dtype, set_default_dtype
from convolve.device import device
from convolve.engines import allocator as _allocator
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
    argmax,
    argmin,
    as_tensor,
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
    max,
    maximum,
    mean,
    min,
    minimum,
    sqrt,
    sum,
    where,
)
from convolve.io import load, save
from convolve.nn.functional import log_softmax, relu, sigmoid, softmax, tanh
from convolve.ops.shape import cat, stack
from convolve.random import Generator, manual_seed
from convolve.safetensors_io import load_safetensors, save_safetensors
from convolve.tensor import Tensor, tensor

# dtypes by PyTorch's names; NumPy accepts each of these strings as a dtype
float16 = half = "float16"
float32 = float = "float32"
float64 = double = "float64"
uint8 = "uint8"
int8 = "int8"
int16 = short = "int16"
int32 = int = "int32"
int64 = long = "int64"
bool = "bool"

__version__ = "0.1.0"

_allocator.apply_default()  # glibc: freed activations stay in the process for the next step (engines/allocator.py)


def __getattr__(name: str) -> object:
    """A subpackage not imported yet (`convolve.models`, `convolve.viz`, ...) is imported on first use; any other
    missing name is a PyTorch name convolve lacks: an AttributeError saying so and what to do instead."""
    if name.startswith("__"):
        raise AttributeError(f"module 'convolve' has no attribute {name!r}")
    if name.isidentifier() and _find_spec(f"convolve.{name}") is not None:
        return _import_module(f"convolve.{name}")
    raise _missing.missing("module 'convolve'", name, f"torch.{name}")


__all__ = [
    "Function",
    "Generator",
    "Size",
    "Tensor",
    "__version__",
    "abs",
    "allclose",
    "amax",
    "amin",
    "arange",
    "argmax",
    "argmin",
    "as_tensor",
    "autograd",
    "backends",
    "bernoulli",
    "bool",
    "cat",
    "chunk",
    "clamp",
    "concat",
    "concatenate",
    "cuda",
    "cumsum",
    "data",
    "device",
    "double",
    "empty",
    "empty_like",
    "enable_grad",
    "equal",
    "exp",
    "eye",
    "flatten",
    "flip",
    "float",
    "float16",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "full_like",
    "gather",
    "get_default_dtype",
    "get_engine",
    "get_num_threads",
    "half",
    "inference_mode",
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "is_grad_enabled",
    "is_tensor",
    "isfinite",
    "isnan",
    "linspace",
    "load",
    "load_safetensors",
    "log",
    "log_softmax",
    "long",
    "manual_seed",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "multinomial",
    "nn",
    "no_grad",
    "numel",
    "ones",
    "ones_like",
    "optim",
    "permute",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "relu",
    "reshape",
    "save",
    "save_safetensors",
    "set_default_dtype",
    "set_grad_enabled",
    "set_num_threads",
    "set_printoptions",
    "short",
    "sigmoid",
    "softmax",
    "sort",
    "split",
    "sqrt",
    "squeeze",
    "stack",
    "std",
    "sum",
    "tanh",
    "tensor",
    "topk",
    "transpose",
    "uint8",
    "unsqueeze",
    "use_engine",
    "utils",
    "var",
    "where",
    "zeros",
    "zeros_like",
]
