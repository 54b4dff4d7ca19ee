"""More of PyTorch's Tensor methods and top-level functions, each a thin composition of existing ops (so gradients
come from the same code): method forms of the operators, in-place arithmetic, comparisons, topk/sort, std, checks
for NaN and infinity, and random fills. Attached to `Tensor` on import (see `convolve/__init__.py`)."""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from convolve.autograd import Context, Function, is_grad_enabled
from convolve.device import check_device
from convolve.functions import where
from convolve.random import Generator, rng
from convolve.tensor import Tensor


class TopK(NamedTuple):
    """(values, indices), as returned by `topk` and `sort`."""

    values: Tensor
    indices: Tensor


def _raw(other: Any) -> Any:
    return other.data if isinstance(other, Tensor) else other


def _compare(op: Callable[..., np.ndarray]) -> Callable[[Tensor, Any], Tensor]:
    def method(self: Tensor, other: Any) -> Tensor:
        return Tensor._from_array(op(self.data, _raw(other)))

    method.__doc__ = f"Elementwise {op.__name__} (a bool tensor, not differentiable)."
    return method


def _inplace(op: Callable[[Tensor, Any], Tensor], ufunc: Any, name: str) -> Callable[..., Tensor]:
    """`x op= y` writes into x's array when x needs no gradient (or grad mode is off), as in PyTorch; a tensor in
    a graph gets the out-of-place result instead, and a leaf that requires grad is refused."""

    def method(self: Tensor, other: Any) -> Tensor:
        if self.requires_grad and is_grad_enabled():
            if self.is_leaf:
                raise RuntimeError(f"{name}: a leaf tensor that requires grad is being used in an in-place "
                                   "operation; wrap the update in `with torch.no_grad():` or write x = x op y")
            return op(self, other)
        ufunc(self.data, _raw(other), out=self.data, casting="same_kind")
        self._version[0] += 1
        return self

    return method


def _named_inplace(ufunc: Any, name: str) -> Callable[..., Tensor]:
    """`x.add_(y, alpha=1)` and friends: in-place, outside the graph (refused on a tensor that records one)."""

    def method(self: Tensor, other: Any, *, alpha: float = 1) -> Tensor:
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError(f"{name}: in-place operations on a tensor that requires grad are not recorded by "
                               f"convolve's autograd; use the out-of-place form or `with torch.no_grad():`")
        value = _raw(other) * alpha if alpha != 1 else _raw(other)
        ufunc(self.data, value, out=self.data, casting="same_kind")
        self._version[0] += 1
        return self

    return method


def topk(self: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> TopK:
    """The `k` largest (or smallest) entries along `dim`, values differentiable, indices int64."""
    n = self.shape[dim]
    if not 0 <= k <= n:
        raise ValueError(f"topk: `k` ({k}) must be in [0, {n}] (the size of dim {dim})")
    order = np.argsort(-self.data if largest else self.data, axis=dim, kind="stable")
    idx = np.take(order, np.arange(k), axis=dim)
    return TopK(_gather(self, idx, dim), Tensor._from_array(idx.astype(np.int64)))


def sort(self: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> TopK:
    """Sorted values along `dim` (differentiable) and the indices that sort, as `torch.sort`."""
    idx = np.argsort(-self.data if descending else self.data, axis=dim, kind="stable")
    return TopK(_gather(self, idx, dim), Tensor._from_array(idx.astype(np.int64)))


def _gather(t: Tensor, idx: np.ndarray, dim: int) -> Tensor:
    """t's values at `idx` along `dim` (take_along_axis), through differentiable advanced indexing."""
    grid = list(np.indices(idx.shape, sparse=True))
    grid[dim % t.ndim] = idx
    return t[tuple(grid)]


def std(self: Tensor, dim: Any = None, unbiased: bool = True, keepdim: bool = False, *,
        correction: int | None = None) -> Tensor:
    """Standard deviation over `dim` (Bessel's correction unless unbiased=False / correction=0)."""
    unbiased = unbiased if correction is None else bool(correction)
    return self.var(dim=dim, unbiased=unbiased, keepdims=keepdim).sqrt()


def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0, generator: Generator | None = None) -> Tensor:
    self.data[...] = rng(generator).uniform(a, b, self.shape)
    self._version[0] += 1
    return self


def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None) -> Tensor:
    self.data[...] = rng(generator).normal(mean, std, self.shape)
    self._version[0] += 1
    return self


def _like(fill: Callable[[tuple[int, ...], np.dtype], np.ndarray]) -> Callable[..., Tensor]:
    def method(self: Tensor, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
               ) -> Tensor:
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], tuple | list) else tuple(size)
        out = Tensor._from_array(fill(shape, self.dtype if dtype is None else np.dtype(dtype)))
        return out.requires_grad_(True) if requires_grad else out

    return method




class CumsumFunction(Function):
    """Running sum along an axis; its gradient is the running sum of the gradient taken from the end."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int) -> np.ndarray:
        ctx.axis = axis
        return np.cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        return (np.flip(np.cumsum(np.flip(grad, ctx.axis), axis=ctx.axis), ctx.axis),)


def repeat(self: Tensor, *sizes: Any) -> Tensor:
    """Tile the tensor `sizes[i]` times along dim i (leading sizes add dims), through expand + reshape."""
    reps = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], tuple | list) else tuple(sizes)
    if len(reps) < self.ndim:
        raise ValueError(f"repeat: give at least {self.ndim} sizes (one per dim), got {reps}")
    shape = (1,) * (len(reps) - self.ndim) + tuple(self.shape)
    x = self.reshape(tuple(v for n in shape for v in (1, n)))  # (1, n0, 1, n1, ...)
    x = x.expand(tuple(v for r, n in zip(reps, shape) for v in (r, n)))
    return x.reshape(tuple(r * n for r, n in zip(reps, shape)))


def split(self: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of `split_size` along `dim` (the last may be smaller), or of the listed sizes."""
    n = self.shape[dim]
    if isinstance(split_size_or_sections, int):
        sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} must sum to the size of dim {dim} ({n})")
    bounds = np.cumsum([0, *sizes])
    lead = (slice(None),) * (dim % self.ndim)
    return tuple(self[(*lead, slice(int(a), int(b)))] for a, b in itertools.pairwise(bounds))


def chunk(self: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """`chunks` pieces of equal size along `dim` (the last smaller when it does not divide), as PyTorch."""
    return split(self, -(-self.shape[dim] // chunks), dim)


def flip(self: Tensor, *dims: Any) -> Tensor:
    """The tensor reversed along `dims` (a differentiable view through indexing)."""
    axes = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], tuple | list) else tuple(dims)
    index = [slice(None)] * self.ndim
    for a in axes:
        index[a] = slice(None, None, -1)
    return self[tuple(index)]


def gather(self: Tensor, dim: int, index: Any) -> Tensor:
    """out[i][j] = self[i][index[i][j]] along `dim` (take_along_axis), differentiable in self."""
    idx = np.asarray(_raw(index))
    if idx.dtype.kind not in "iu" or idx.ndim != self.ndim:
        raise ValueError(f"gather: `index` must be an integer tensor with {self.ndim} dims, got {idx.dtype} "
                         f"{idx.shape}")
    return _gather(self, idx, dim)


def _masked_fill(self: Tensor, mask: Any, value: float) -> Tensor:
    return where(Tensor._from_array(np.asarray(_raw(mask), dtype=bool)), Tensor._from_array(
        np.asarray(value, dtype=self.dtype)), self)


def _unary_inplace(self: Tensor, ufunc: Any, name: str) -> Tensor:
    if self.requires_grad and is_grad_enabled():
        raise RuntimeError(f"{name}: in-place operations on a tensor that requires grad are not recorded by "
                           "convolve's autograd; use the out-of-place form or `with torch.no_grad():`")
    ufunc(self.data, out=self.data)
    self._version[0] += 1
    return self


_METHODS: dict[str, Any] = {
    "add": lambda self, other, alpha=1: self + (other * alpha if alpha != 1 else other),
    "sub": lambda self, other, alpha=1: self - (other * alpha if alpha != 1 else other),
    "mul": lambda self, other: self * other,
    "div": lambda self, other: self / other,
    "neg": lambda self: -self,
    "mm": lambda self, other: self @ other,
    "bmm": lambda self, other: self @ other,
    "t": lambda self: self.transpose(0, 1) if self.ndim == 2 else self,
    "view_as": lambda self, other: self.reshape(other.shape),
    "reshape_as": lambda self, other: self.reshape(other.shape),
    "expand_as": lambda self, other: self.expand(other.shape),
    "half": lambda self: self.to(np.float16),
    "int": lambda self: Tensor._from_array(self.data.astype(np.int32)),
    "bool": lambda self: Tensor._from_array(self.data.astype(bool)),
    "all": lambda self, dim=None, keepdim=False: Tensor._from_array(np.all(self.data, axis=dim, keepdims=keepdim)),
    "any": lambda self, dim=None, keepdim=False: Tensor._from_array(np.any(self.data, axis=dim, keepdims=keepdim)),
    "isnan": lambda self: Tensor._from_array(np.isnan(self.data)),
    "isfinite": lambda self: Tensor._from_array(np.isfinite(self.data)),
    "masked_fill": lambda self, mask, value: _masked_fill(self, mask, value),
    "eq": _compare(np.equal), "ne": _compare(np.not_equal), "lt": _compare(np.less),
    "le": _compare(np.less_equal), "gt": _compare(np.greater), "ge": _compare(np.greater_equal),
    "__iadd__": _inplace(Tensor.__add__, np.add, "+="), "__isub__": _inplace(Tensor.__sub__, np.subtract, "-="),
    "__imul__": _inplace(Tensor.__mul__, np.multiply, "*="),
    "__itruediv__": _inplace(Tensor.__truediv__, np.divide, "/="),
    "add_": _named_inplace(np.add, "add_"), "sub_": _named_inplace(np.subtract, "sub_"),
    "mul_": _named_inplace(np.multiply, "mul_"), "div_": _named_inplace(np.divide, "div_"),
    "topk": topk, "sort": sort, "std": std, "uniform_": uniform_, "normal_": normal_,
    "repeat": repeat, "split": split, "chunk": chunk, "flip": flip, "gather": gather,
    "cumsum": lambda self, dim: CumsumFunction.apply(self, axis=dim),
    "is_contiguous": lambda self, memory_format=None: bool(self.data.flags.c_contiguous),
    "new_tensor": lambda self, data, dtype=None, requires_grad=False: Tensor(
        np.array(_raw(data), dtype=self.dtype if dtype is None else dtype), requires_grad=requires_grad),
    "new_full": lambda self, size, fill_value, dtype=None: Tensor._from_array(
        np.full(tuple(size), fill_value, dtype=self.dtype if dtype is None else dtype)),
    "abs_": lambda self: _unary_inplace(self, np.abs, "abs_"),
    "clamp_": lambda self, min=None, max=None: _unary_inplace(self, lambda a, out: np.clip(a, min, max, out=out),
                                                            "clamp_"),

    "new_zeros": _like(np.zeros), "new_ones": _like(np.ones), "new_empty": _like(np.empty),
}


for _name, _method in _METHODS.items():
    setattr(Tensor, _name, _method)


# ----- top-level functions --------------------------------------------------------------------------------------
def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return input.flatten(start_dim, end_dim)


def allclose(input: Tensor, other: Tensor, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
    return builtins.bool(np.allclose(_raw(input), _raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input: Tensor, other: Tensor) -> bool:
    return builtins.bool(np.array_equal(_raw(input), _raw(other)))


def isnan(input: Tensor) -> Tensor:
    return Tensor._from_array(np.isnan(_raw(input)))


def isfinite(input: Tensor) -> Tensor:
    return Tensor._from_array(np.isfinite(_raw(input)))


def randperm(n: int, generator: Generator | None = None, dtype: Any = np.int64, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """A random permutation of 0..n-1 (int64), from `generator` or the global one."""
    check_device(device, "randperm")
    return Tensor._from_array(rng(generator).permutation(n).astype(dtype))


def numel(input: Tensor) -> int:
    return input.numel()


def _like_random(draw: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]) -> Callable[..., Tensor]:
    def function(input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
        check_device(device, "like")
        out = Tensor._from_array(draw(rng(), input.shape).astype(input.dtype if dtype is None else dtype))
        return out.requires_grad_(True) if requires_grad else out

    return function


rand_like = _like_random(lambda g, shape: g.random(shape))
randn_like = _like_random(lambda g, shape: g.standard_normal(shape))


def empty_like(input: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    check_device(device, "empty_like")
    return Tensor(np.empty_like(input.data, dtype=dtype), requires_grad=requires_grad)


def full_like(input: Tensor, fill_value: float, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    check_device(device, "full_like")
    return Tensor(np.full_like(input.data, fill_value, dtype=dtype), requires_grad=requires_grad)


def bernoulli(input: Tensor, generator: Generator | None = None) -> Tensor:
    """1 with probability input[i], else 0 (same dtype as `input`)."""
    p = input.data
    return Tensor._from_array((rng(generator).random(p.shape) < p).astype(p.dtype))


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, generator: Generator | None = None
                ) -> Tensor:
    """`num_samples` indices per row drawn with probability proportional to the row's weights (int64)."""
    w = np.asarray(input.data, dtype=np.float64)
    rows = np.atleast_2d(w)
    gen = rng(generator)
    out = np.stack([gen.choice(len(r), size=num_samples, replace=replacement, p=r / r.sum()) for r in rows])
    return Tensor._from_array(out.astype(np.int64).reshape((num_samples,) if w.ndim == 1 else out.shape))


class Size(tuple):
    """A shape, as `torch.Size`: a tuple of ints (convolve's `.shape` is a plain tuple and compares equal)."""

    def numel(self) -> int:
        return int(np.prod(self)) if self else 1


def set_printoptions(precision: int | None = None, threshold: int | None = None, edgeitems: int | None = None,
                     linewidth: int | None = None, profile: str | None = None, sci_mode: bool | None = None) -> None:
    """How tensors print. Tensors print through NumPy, so this sets NumPy's print options (for arrays too)."""
    options: dict[str, Any] = {"precision": precision, "threshold": threshold, "edgeitems": edgeitems,
                               "linewidth": linewidth}
    if profile is not None:
        options.update({"default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
                        "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
                        "full": {"threshold": 2**31 - 1}}[profile])
    if sci_mode is not None:
        options["suppress"] = not sci_mode
    np.set_printoptions(**{k: v for k, v in options.items() if v is not None})


def _reexport(name: str) -> Callable[..., Any]:
    def function(input: Tensor, *args: Any, **kwargs: Any) -> Any:
        return getattr(input, name)(*args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"`torch.{name}(x, ...)`: the same as `x.{name}(...)`."
    return function


topk_fn, sort_fn, std_fn = _reexport("topk"), _reexport("sort"), _reexport("std")
unsqueeze, squeeze, reshape = _reexport("unsqueeze"), _reexport("squeeze"), _reexport("reshape")
permute, transpose, var = _reexport("permute"), _reexport("transpose"), _reexport("var")
split_fn, chunk_fn, flip_fn = _reexport("split"), _reexport("chunk"), _reexport("flip")
gather_fn, cumsum_fn = _reexport("gather"), _reexport("cumsum")
