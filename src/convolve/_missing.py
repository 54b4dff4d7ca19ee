"""Errors for PyTorch names convolve does not have: say so, and what to do instead, rather than a bare
AttributeError. Used by the module-level `__getattr__` of `convolve`, `convolve.nn`, `convolve.nn.functional`
and by `Tensor.__getattr__`."""

from __future__ import annotations

GUIDE = "docs/coming-from-pytorch.md lists what convolve has"

ADVICE = {
    "bfloat16": "NumPy has no bfloat16; use convolve.float32 (the default) or float16",
    "complex64": "complex tensors are not supported; keep real and imaginary parts in two float tensors",
    "compile": "there is no graph compiler; call the model directly (drop torch.compile)",
    "jit": "there is no TorchScript; save the weights with convolve.save(model.state_dict(), path)",
    "autocast": "there is no mixed precision; train in float32 (the default dtype)",
    "amp": "there is no mixed precision (no autocast or GradScaler); train in float32",
    "linalg": "there is no convolve.linalg; NumPy's numpy.linalg works on x.numpy() (outside autograd)",
    "fft": "there is no convolve.fft; numpy.fft works on x.numpy() (outside autograd)",
    "hub": "there is no model hub; the model zoo is convolve.models",
    "sparse": "sparse tensors are not supported; use dense tensors",
    "mps": "convolve computes with NumPy on the CPU only; use device 'cpu'",
    "channels_last": "tensors are NCHW NumPy arrays; drop memory_format (the fast kernels pick their own layout)",
}


def missing(owner: str, name: str, torch_name: str, workaround: str = "") -> AttributeError:
    """The AttributeError for `owner.name`, with advice when PyTorch has `torch_name`."""
    advice = ADVICE.get(name)
    if advice is None:
        advice = f"PyTorch's `{torch_name}` is not implemented in convolve{workaround} ({GUIDE})"
    return AttributeError(f"{owner} has no attribute {name!r}: {advice}")
