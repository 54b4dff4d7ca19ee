"""Devices, as far as convolve has them: every tensor lives in host memory as a NumPy array, so the one device
is 'cpu'. `device('cpu')`, `.to('cpu')`, `.cpu()` and `device=` arguments are accepted so PyTorch code runs;
any other device ('cuda', 'mps', ...) is an error that says so, instead of silently computing elsewhere."""

from __future__ import annotations

from typing import Any

import numpy as np

_KNOWN = ("cpu", "cuda", "mps", "xpu", "meta", "hip", "xla", "vulkan", "ipu", "hpu", "mtia", "privateuseone")


class device:  # noqa: N801  (PyTorch's name)
    """A device name and optional index, as `torch.device`; only 'cpu' can hold tensors."""

    def __init__(self, type: str | device, index: int | None = None) -> None:
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string such as 'cpu', got {type!r}")
        name, _, number = type.partition(":")
        if name not in _KNOWN:
            raise RuntimeError(f"device: expected one of {', '.join(_KNOWN)} device type at start of device string: "
                               f"{type}")
        self.type = name
        self.index = int(number) if number else index

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


CPU = device("cpu")


def is_device(value: Any) -> bool:
    """Whether `value` names a device (a `device`, or a string such as 'cpu' or 'cuda:0'), not a dtype."""
    return isinstance(value, device) or (isinstance(value, str) and value.partition(":")[0] in _KNOWN)


def check_device(value: Any, fn: str) -> None:
    """Accept None and the CPU; any other device gets an error naming what to do instead."""
    if value is None:
        return
    d = device(value) if not isinstance(value, device) else value
    if d.type != "cpu":
        raise RuntimeError(
            f"{fn}: device {str(d)!r} is not available: convolve computes with NumPy on the CPU only. Use 'cpu' "
            "(e.g. `device = 'cpu'`), or drop the .to(device) / device= argument"
        )


def parse_to(fn: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> np.dtype | None:
    """The dtype asked for by `.to(...)` in any of PyTorch's forms (dtype / device / device, dtype / tensor), with
    the device checked; None when no dtype change is asked."""
    unknown = set(kwargs) - {"dtype", "device", "non_blocking", "copy", "memory_format"}
    if unknown:
        raise TypeError(f"{fn}: unexpected keyword argument(s) {sorted(unknown)}")
    dtype, dev = kwargs.get("dtype"), kwargs.get("device")
    for arg in args:
        if hasattr(arg, "dtype") and hasattr(arg, "data") and not isinstance(arg, np.ndarray | np.dtype | type):
            dtype = arg.dtype  # .to(other_tensor)
        elif is_device(arg):
            dev = arg
        elif isinstance(arg, bool):  # .to(dtype, non_blocking) positional flags
            continue
        else:
            dtype = arg
    check_device(dev, fn)
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{fn}: expected a dtype or device, got {dtype!r}") from exc
