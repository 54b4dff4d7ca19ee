"""DistributedDataParallel: the same model on every rank, each rank a slice of the global batch, one gradient.

When wrapped, the parameters and buffers of rank 0 are copied to every rank. In each forward with grad enabled,
the gradient that will flow back into the module's output is scaled by this rank's share n_r / N of the global
batch (N = sum of the ranks' batch sizes, dim 0 of the first input), so the gradient inside the module, SyncBatchNorm
included, is exactly the global-batch gradient of a loss that is a mean over the batch; once `backward()` has
accumulated every gradient, one all-reduce per dtype (a flat buffer) sums them over the ranks. Equal batches
reduce to PyTorch's average; an uneven last batch stays exact. The training loop needs no other change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from convolve.autograd import Context, Function, is_grad_enabled, queue_callback
from convolve.distributed.collectives import all_gather_object, all_reduce, broadcast
from convolve.distributed.process_group import current_group
from convolve.nn.module import Module
from convolve.tensor import Tensor

__all__ = ["DistributedDataParallel"]


class _ScaleAndSync(Function):
    """Identity forward; backward scales the output gradient by the rank's batch share and, if this forward was to
    synchronize, queues the gradient all-reduce for the end of the backward pass."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, share: float, on_backward: Callable[[], None] | None) -> np.ndarray:
        ctx.share, ctx.on_backward = share, on_backward
        return x.view()

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        if ctx.on_backward is not None:
            ctx.on_backward()
        return (grad * grad.dtype.type(ctx.share),)


def _map_tensors(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """`obj` with `fn` applied to every floating Tensor that requires grad inside tuples, lists and dicts."""
    if isinstance(obj, Tensor):
        return fn(obj) if obj.requires_grad else obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a NamedTuple (GoogLeNet's outputs)
        return type(obj)(*(_map_tensors(o, fn) for o in obj))
    if isinstance(obj, tuple | list):
        return type(obj)(_map_tensors(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    return obj


def _batch_size(inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """dim 0 of the first Tensor or array among the forward's arguments."""
    for value in (*inputs, *kwargs.values()):
        if isinstance(value, Tensor | np.ndarray) and value.ndim >= 1:
            return int(value.shape[0])
    raise ValueError("DistributedDataParallel: the forward needs a Tensor or array argument whose dim 0 is the "
                     "batch (its size weights this rank's gradient)")


def _by_dtype(tensors: Sequence[Tensor]) -> dict[np.dtype, list[Tensor]]:
    groups: dict[np.dtype, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault(t.data.dtype, []).append(t)
    return groups


def _broadcast_flat(tensors: list[Tensor], src: int = 0) -> None:
    """Copy the values of `tensors` on rank `src` to every rank: one broadcast per dtype."""
    for dtype, group in _by_dtype(tensors).items():
        flat = np.concatenate([t.data.ravel() for t in group]) if group else np.empty(0, dtype)
        broadcast(flat, src)
        offset = 0
        for t in group:
            t.data[...] = flat[offset : offset + t.data.size].reshape(t.data.shape)
            offset += t.data.size


class DistributedDataParallel(Module):
    """Data-parallel training of `module` across the ranks of the process group (as
    `torch.nn.parallel.DistributedDataParallel`); `state_dict` keys are prefixed by `module.`.

    `broadcast_buffers`: copy rank 0's buffers (BatchNorm's running statistics) to every rank at the start of each
    forward with grad enabled. Forwards under `no_grad()` (evaluation) do no collective, so the ranks may evaluate
    different numbers of batches. The loss must be a mean over the batch (the losses' default reduction).
    """

    def __init__(self, module: Module, broadcast_buffers: bool = True) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: `module` must be a convolve.nn.Module, got "
                            f"{type(module).__name__}")
        self.world_size = current_group("DistributedDataParallel").size
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.require_backward_grad_sync = True
        self._queued = False
        if self.world_size > 1:
            self._check_same_model()
            _broadcast_flat([*module.parameters(), *module.buffers()])

    def _check_same_model(self) -> None:
        """Every rank must wrap the same architecture; a mismatch would otherwise mix unrelated numbers."""
        mine = [(name, tuple(t.shape), str(t.dtype)) for name, t in self.module.state_dict().items()]
        every: list[Any] = [None] * self.world_size
        all_gather_object(every, mine)
        for rank, theirs in enumerate(every):
            if theirs != every[0]:
                diff = next((a, b) for a, b in zip([*every[0], None], [*theirs, None]) if a != b)
                raise ValueError(f"DistributedDataParallel: rank {rank}'s module differs from rank 0's: "
                                 f"{diff[1]} where rank 0 has {diff[0]} (name, shape, dtype)")

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if not is_grad_enabled():
            return self.module(*inputs, **kwargs)
        n = _batch_size(inputs, kwargs)
        self._queued = False  # a backward that raised may have left it set
        if self.world_size > 1 and self.broadcast_buffers:
            _broadcast_flat(list(self.module.buffers()))
        output = self.module(*inputs, **kwargs)
        total = np.array([n], np.int64)
        all_reduce(total)  # N: the global batch of this step
        if total[0] == 0:
            raise ValueError("DistributedDataParallel: the global batch is empty on every rank")
        on_backward = self._queue_reduction if self.require_backward_grad_sync and self.world_size > 1 else None
        return _map_tensors(output, lambda t: _ScaleAndSync.apply(t, share=n / int(total[0]),
                                                                  on_backward=on_backward))

    def _queue_reduction(self) -> None:
        if not self._queued:
            self._queued = True
            queue_callback(self._reduce_gradients)

    def _reduce_gradients(self) -> None:
        """Sum every parameter's gradient over the ranks (one flat all-reduce per dtype); a parameter that no rank
        gave a gradient keeps `grad=None`, one that some ranks did gets the sum on every rank."""
        self._queued = False
        params = [p for p in self.module.parameters() if p.requires_grad]
        for dtype, group in _by_dtype(params).items():
            sizes = [p.data.size for p in group]
            total = sum(sizes)
            flat = np.zeros(total + len(group), dtype)  # (all gradients, then one has-gradient flag per parameter)
            starts = np.cumsum([0, *sizes])
            for i, p in enumerate(group):
                if p.grad is not None:
                    flat[starts[i] : starts[i + 1]] = p.grad.data.ravel()
                    flat[total + i] = 1
            all_reduce(flat)
            for i, p in enumerate(group):
                if flat[total + i] == 0:
                    continue  # no rank had a gradient for it
                values = flat[starts[i] : starts[i + 1]].reshape(p.data.shape)
                if p.grad is None:
                    p.grad = Tensor._from_array(values.copy())
                else:
                    p.grad.data[...] = values

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Forwards inside skip the gradient all-reduce: gradients accumulate locally (gradient accumulation); the
        first backward of a forward outside sums everything accumulated."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def extra_repr(self) -> str:
        return f"world_size={self.world_size}, broadcast_buffers={self.broadcast_buffers}"
