"""`Tensor`: an ndarray plus what autograd needs (`requires_grad`, `.grad`, the node that produced it)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from convolve.backend import get_default_dtype, is_floating

ArrayLike = Any


def _as_array(data: ArrayLike, dtype: Any = None) -> np.ndarray:
    """Arrays keep their dtype (as in PyTorch); Python floats and lists take the default float dtype."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray | np.generic):
        arr = np.asarray(data)
        return _numeric(arr if dtype is None else arr.astype(dtype, copy=False))
    if dtype is not None:
        return _numeric(np.asarray(data, dtype=dtype))
    arr = _numeric(np.asarray(data))
    if arr.dtype.kind == "f":
        return arr.astype(get_default_dtype(), copy=False)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    return arr


_KINDS = {"O": "Python objects", "U": "strings", "S": "bytes", "V": "raw records", "M": "datetimes",
          "m": "timedeltas"}


def _numeric(arr: np.ndarray) -> np.ndarray:
    """`arr` itself when it holds numbers or booleans (as PyTorch, object and string arrays are refused)."""
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"tensor: cannot build a tensor from an array of dtype {arr.dtype} "
                        f"({_KINDS.get(arr.dtype.kind, 'not numbers')}); only bool, integer, float and complex "
                        f"data are supported")
    return arr


class Tensor:
    """A multi-dimensional array that records the operations applied to it, for `backward()`."""

    __array_priority__ = 1000  # so that ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> None:
        self.data: np.ndarray = _as_array(data, dtype)
        self.grad: Tensor | None = None
        self._node: Any = None
        self._retains_grad = False
        self._version = [0]  # bumped by in-place writes; shared with views (see autograd._share_versions)
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_array(cls, array: np.ndarray, requires_grad: bool = False) -> Tensor:
        t = cls.__new__(cls)
        t.data = np.asarray(array)
        t.grad = None
        t._node = None
        t._retains_grad = False
        t._version = [0]
        t.requires_grad = requires_grad
        return t

    # ----- autograd ---------------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not is_floating(self.data.dtype):
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> Any:
        return self._node

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward (as `torch.Tensor.retain_grad`)."""
        self._retains_grad = True

    def backward(self, gradient: ArrayLike | None = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`; `gradient` is required unless self is a scalar."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: `gradient` must be given for a non-scalar tensor (shape {self.shape})"
                )
            g = np.ones_like(self.data)
        else:
            g = _as_array(gradient, self.data.dtype)
            if g.shape != self.data.shape:
                raise ValueError(f"backward: `gradient` shape {g.shape} must equal the tensor's shape {self.shape}")
        _autograd.run_backward(self, g, retain_graph=retain_graph)

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, cut from the graph."""
        return Tensor._from_array(self.data)

    # ----- array facts ------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None) -> Any:
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied), as `torch.Tensor.numpy()`."""
        return self.data

    def item(self) -> Any:
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({np.array2string(self.data, separator=', ', prefix='tensor(')}, dtype={self.dtype}{grad})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if copy is False:
            if dtype is not None and np.dtype(dtype) != self.data.dtype:
                raise ValueError(f"__array__: cannot convert dtype {self.data.dtype} to {dtype} without a copy")
            return self.data
        # NumPy 2 trusts the copy flag: np.array(t) must not alias the tensor's memory
        return np.array(self.data, dtype=dtype, copy=True)

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    __hash__ = object.__hash__

    # ----- dtype conversion (differentiable) ----------------------------------------------------------
    def to(self, dtype: Any) -> Tensor:
        return _shape.Cast.apply(self, dtype=np.dtype(dtype))

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def long(self) -> Tensor:
        return Tensor._from_array(self.data.astype(np.int64))

    def clone(self) -> Tensor:
        return _shape.Cast.apply(self, dtype=self.dtype, copy=True)

    # ----- arithmetic -------------------------------------------------------------------------------
    def _other(self, other: Any) -> Any:
        """`other` as a Tensor. A Python scalar takes our dtype (x * 0.5 stays float32), except a float with
        an integer tensor, which gives the default float dtype as in PyTorch (int_tensor * 0.5 is not 0)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, np.ndarray | np.generic):
            arr = np.asarray(other)
            if arr.ndim == 0 and arr.dtype.kind == "f" and self.dtype.kind == "f":
                arr = arr.astype(self.dtype)  # a 0-d float acts like a Python scalar (PyTorch's rule)
            return Tensor._from_array(arr)
        if isinstance(other, builtins.float) and self.dtype.kind != "f":
            return Tensor._from_array(np.asarray(other, dtype=get_default_dtype()))
        return Tensor._from_array(np.asarray(other, dtype=self.dtype))

    def _pair(self, other: Any, true_divide: bool = False) -> tuple[Tensor, Tensor]:
        """(self, other) with PyTorch's type promotion: an integer operand meeting a float one takes the float's
        dtype (int64 * float32 is float32, not NumPy's float64); integer true division gives the default float."""
        o = self._other(other)
        a_kind, b_kind = self.dtype.kind, o.dtype.kind
        if a_kind == "f" and b_kind != "f":
            return self, o.to(self.dtype)
        if b_kind == "f" and a_kind != "f":
            return self.to(o.dtype), o
        if true_divide and a_kind != "f":
            return self.to(get_default_dtype()), o.to(get_default_dtype())
        return self, o

    def __add__(self, other: Any) -> Tensor:
        return _ew.Add.apply(*self._pair(other))

    def __radd__(self, other: Any) -> Tensor:
        a, b = self._pair(other)
        return _ew.Add.apply(b, a)

    def __sub__(self, other: Any) -> Tensor:
        return _ew.Sub.apply(*self._pair(other))

    def __rsub__(self, other: Any) -> Tensor:
        a, b = self._pair(other)
        return _ew.Sub.apply(b, a)

    def __mul__(self, other: Any) -> Tensor:
        return _ew.Mul.apply(*self._pair(other))

    def __rmul__(self, other: Any) -> Tensor:
        a, b = self._pair(other)
        return _ew.Mul.apply(b, a)

    def __truediv__(self, other: Any) -> Tensor:
        return _ew.Div.apply(*self._pair(other, true_divide=True))

    def __rtruediv__(self, other: Any) -> Tensor:
        a, b = self._pair(other, true_divide=True)
        return _ew.Div.apply(b, a)

    def __pow__(self, exponent: Any) -> Tensor:
        return _ew.Pow.apply(*self._pair(exponent))

    def __rpow__(self, base: Any) -> Tensor:
        a, b = self._pair(base)
        return _ew.Pow.apply(b, a)

    def __neg__(self) -> Tensor:
        return _ew.Neg.apply(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _ew.Abs.apply(self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ew.MatMul.apply(self, self._other(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ew.MatMul.apply(self._other(other), self)

    def pow(self, exponent: Any) -> Tensor:
        return self.__pow__(exponent)

    def exp(self) -> Tensor:
        return _ew.Exp.apply(self)

    def log(self) -> Tensor:
        return _ew.Log.apply(self)

    def sqrt(self) -> Tensor:
        return _ew.Sqrt.apply(self)

    def abs(self) -> Tensor:
        return _ew.Abs.apply(self)

    def clamp(self, min: builtins.float | None = None, max: builtins.float | None = None) -> Tensor:
        return _ew.Clamp.apply(self, lo=min, hi=max)

    # ----- comparisons (not differentiable) -----------------------------------------------------------
    def _compare(self, other: Any, op: Any) -> Tensor:
        return Tensor._from_array(op(self.data, other.data if isinstance(other, Tensor) else other))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, np.less)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, np.less_equal)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater_equal)

    # ----- reductions -------------------------------------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _red.Sum.apply(self, axis=_axes(axis, dim), keepdims=keepdims or keepdim)

    def mean(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _red.Mean.apply(self, axis=_axes(axis, dim), keepdims=keepdims or keepdim)

    def max(self, dim: int | None = None, keepdim: bool = False, *, axis: Any = None, keepdims: bool = False) -> Any:
        """As PyTorch: `max()` is the largest value; `max(dim)` returns (values, indices). NumPy's `axis=`
        gives the values only (like `amax`)."""
        if dim is None:
            return self.amax(axis=axis, keepdims=keepdims or keepdim)
        values = self.amax(axis=dim, keepdims=keepdim)
        indices = np.argmax(self.data, axis=dim)
        return MaxMin(values, Tensor._from_array(np.expand_dims(indices, dim) if keepdim else indices))

    def min(self, dim: int | None = None, keepdim: bool = False, *, axis: Any = None, keepdims: bool = False) -> Any:
        """As `max`, for the smallest value."""
        if dim is None:
            return self.amin(axis=axis, keepdims=keepdims or keepdim)
        values = self.amin(axis=dim, keepdims=keepdim)
        indices = np.argmin(self.data, axis=dim)
        return MaxMin(values, Tensor._from_array(np.expand_dims(indices, dim) if keepdim else indices))

    def amax(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: bool = False) -> Tensor:
        """Largest values over `axis`/`dim` (all if None); ties share the gradient equally."""
        return _red.Max.apply(self, axis=_axes(axis, dim), keepdims=keepdims or keepdim)

    def amin(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, keepdim: bool = False) -> Tensor:
        """Smallest values over `axis`/`dim` (all if None)."""
        return -_red.Max.apply(-self, axis=_axes(axis, dim), keepdims=keepdims or keepdim)

    def var(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None, unbiased: bool = True) -> Tensor:
        ax = _axes(axis, dim)
        centred = self - self.mean(axis=ax, keepdims=True)
        n = self.data.size if ax is None else int(np.prod([self.shape[a] for a in np.atleast_1d(ax)]))
        return (centred * centred).sum(axis=ax, keepdims=keepdims) / (n - 1 if unbiased else n)

    def argmax(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        return Tensor._from_array(np.argmax(self.data, axis=_axes(axis, dim)))

    def argmin(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        return Tensor._from_array(np.argmin(self.data, axis=_axes(axis, dim)))

    # ----- shape ------------------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], Sequence):
            shape = tuple(shape[0])
        return _shape.Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        s = self.shape
        if not s:
            return self.reshape(1)
        start, end = _dim(start_dim, len(s), "flatten", "start_dim"), _dim(end_dim, len(s), "flatten", "end_dim")
        if start > end:
            raise ValueError(f"flatten: `start_dim` ({start_dim}) must not come after `end_dim` ({end_dim})")
        return self.reshape((*s[:start], -1, *s[end + 1 :]))

    def permute(self, *dims: Any) -> Tensor:
        if len(dims) == 1 and isinstance(dims[0], Sequence):
            dims = tuple(dims[0])
        return _shape.Permute.apply(self, dims=dims)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        order = list(range(self.ndim))
        order[dim0], order[dim1] = order[dim1], order[dim0]
        return self.permute(order)

    @property
    def T(self) -> Tensor:
        return self.permute(tuple(reversed(range(self.ndim))))

    def unsqueeze(self, dim: int) -> Tensor:
        d = _dim(dim, self.ndim + 1, "unsqueeze", "dim")
        return self.reshape((*self.shape[:d], 1, *self.shape[d:]))

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        if self.shape[dim] != 1:
            return self
        s = list(self.shape)
        del s[dim]
        return self.reshape(tuple(s))

    def expand(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], Sequence):
            shape = tuple(shape[0])
        return _shape.BroadcastTo.apply(self, shape=shape)

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, list) and any(isinstance(i, Tensor) for i in index):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)  # PyTorch reads it as a tuple
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return _shape.GetItem.apply(self, index=index)

    def __setitem__(self, index: Any, value: Any) -> None:
        if self.requires_grad and self.is_leaf:
            raise RuntimeError("in-place assignment to a leaf tensor that requires grad is not allowed")
        self.data[index] = value.data if isinstance(value, Tensor) else value
        self._version[0] += 1

    # ----- in-place (no graph) ----------------------------------------------------------------------
    def zero_(self) -> Tensor:
        self.data[...] = 0
        self._version[0] += 1
        return self

    def fill_(self, value: builtins.float) -> Tensor:
        self.data[...] = value
        self._version[0] += 1
        return self

    def copy_(self, src: Any) -> Tensor:
        src_arr = src.data if isinstance(src, Tensor) else np.asarray(src)
        if src_arr.shape != self.shape:
            raise ValueError(f"copy_: `src` shape {src_arr.shape} must equal {self.shape}")
        self.data[...] = src_arr
        self._version[0] += 1
        return self


class MaxMin(NamedTuple):
    """(values, indices), as returned by `Tensor.max(dim)` / `Tensor.min(dim)`."""

    values: Tensor
    indices: Tensor


def _dim(dim: int, ndim: int, fn: str, name: str) -> int:
    """`dim` in [-ndim, ndim) as a non-negative index, else a ValueError naming it."""
    if not -ndim <= dim < ndim:
        raise ValueError(f"{fn}: `{name}` ({dim}) is out of range for {ndim} dimensions: expected [{-ndim}, {ndim})")
    return dim % ndim


def _axes(axis: Any, dim: Any) -> Any:
    """Accept NumPy's `axis` or PyTorch's `dim`; tuples/lists become tuples."""
    a = dim if axis is None else axis
    return tuple(a) if isinstance(a, list) else a


def tensor(data: ArrayLike, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Build a tensor (a copy of `data`): arrays keep their dtype, Python floats/lists take the default."""
    arr = np.array(_as_array(data, dtype), copy=True)
    return Tensor(arr, requires_grad=requires_grad)


from convolve import autograd as _autograd  # noqa: E402  (ops import Tensor from this module)
from convolve.ops import elementwise as _ew  # noqa: E402
from convolve.ops import reduction as _red  # noqa: E402
from convolve.ops import shape as _shape  # noqa: E402
