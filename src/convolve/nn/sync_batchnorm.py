"""SyncBatchNorm: batch normalization whose statistics, and their gradient, span the global batch of all ranks.

Forward (training): all-reduce the per-channel sums and counts -> the global mean; all-reduce the sums of
squared deviations -> the global (biased) variance; normalize the local slice with them. Backward: all-reduce
sum(dy) and sum(dy * (x - mean)) per channel, then each rank's input gradient is BatchNorm's formula with the
global sums, while the weight and bias gradients stay local sums (DistributedDataParallel adds them over the
ranks). The result equals BatchNorm on the concatenated batch in one process. Sums are carried in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convolve.autograd import Context, Function
from convolve.nn.module import Module
from convolve.nn.norm import _BatchNorm
from convolve.nn.parameter import Parameter
from convolve.tensor import Tensor

__all__ = ["SyncBatchNorm"]


def _all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """Sum of the float64 `values` over the ranks of the process group (lazily imported: nn sits below it)."""
    from convolve.distributed import all_reduce

    all_reduce(values)
    return values


def _channel_sum(a3: np.ndarray, b3: np.ndarray | None = None) -> np.ndarray:
    """Per-channel sum of a (or a * b) over (N, L) of (N, C, L) arrays, per-sample partials added in float64."""
    partial = np.einsum("ncl->nc", a3) if b3 is None else np.einsum("ncl,ncl->nc", a3, b3)  # (N, C)
    return partial.sum(axis=0, dtype=np.float64)  # (C,)


class _SyncBatchNormFunction(Function):
    """Training-mode batch norm with statistics over every rank's batch; updates the running statistics."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                running_mean: np.ndarray | None, running_var: np.ndarray | None, momentum: float,
                eps: float) -> np.ndarray:
        x3 = x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, L)
        c = x3.shape[1]
        sums = _all_reduce_sum(np.append(_channel_sum(x3), x3.shape[0] * x3.shape[2]))  # (C + 1,): sums, count
        m = sums[c]
        if m <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all ranks when training, "
                             f"got {int(m)} (input shape on this rank {x.shape})")
        mean = (sums[:c] / m).astype(x.dtype)  # (C,)
        centred = x3 - mean[None, :, None]  # (N, C, L)
        var64 = _all_reduce_sum(_channel_sum(centred, centred)) / m  # (C,) biased
        inv_std = (1 / np.sqrt(var64.astype(x.dtype) + x.dtype.type(eps))).astype(x.dtype)  # (C,)
        scale = inv_std if weight is None else weight * inv_std
        out = centred * scale[None, :, None]
        if bias is not None:
            out += bias[None, :, None]
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        if running_var is not None:
            running_var[...] = (1 - momentum) * running_var + momentum * (var64 * (m / (m - 1))).astype(x.dtype)
        ctx.save_for_backward(x, weight)
        ctx.mean, ctx.inv_std, ctx.scale, ctx.count = mean, inv_std, scale, m
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple[Any, ...]:
        x, _ = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        x3, g3 = x.reshape(x.shape[0], x.shape[1], -1), grad.reshape(x.shape[0], x.shape[1], -1)  # (N, C, L)
        c = x3.shape[1]
        centred = x3 - ctx.mean[None, :, None]
        local = np.concatenate([_channel_sum(g3), _channel_sum(g3, centred)])  # (2C,): sum dy, sum dy * (x - mean)
        gw = (local[c:] * ctx.inv_std).astype(x.dtype) if need_w else None
        gb = local[:c].astype(x.dtype) if need_b else None
        if not need_x:
            return None, gw, gb
        total = _all_reduce_sum(local.copy()) / ctx.count  # (2C,): global means of dy and dy * (x - mean)
        mean_dy = total[:c].astype(x.dtype)
        k = (total[c:] * ctx.inv_std.astype(np.float64) ** 2).astype(x.dtype)
        gx = (g3 - mean_dy[None, :, None] - centred * k[None, :, None]) * ctx.scale[None, :, None]
        return gx.reshape(x.shape), gw, gb


class SyncBatchNorm(_BatchNorm):
    """Batch normalization of (N, C, *) input over the batch of every rank (as `torch.nn.SyncBatchNorm`).

    Training mode with an initialized process group uses the global batch's statistics (three small
    all-reduces per step: two forward, one backward); eval mode uses the running statistics; without a process
    group it is BatchNorm (`F.batch_norm`). Every rank must run it the same number of times (as inside
    DistributedDataParallel).
    """

    ndims = (2, 3, 4, 5)
    layout = "(N, C, *)"

    def forward(self, input: Tensor) -> Tensor:
        from convolve.distributed import is_initialized

        self._check_input(input)
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        if not bn_training or not is_initialized():
            return super().forward(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data[...] += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_buffers = not self.training or self.track_running_stats
        return _SyncBatchNormFunction.apply(
            input, self.weight, self.bias, running_mean=self.running_mean.data if use_buffers else None,
            running_var=self.running_var.data if use_buffers else None, momentum=factor, eps=self.eps)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """`module` with every BatchNorm1d/2d replaced by a SyncBatchNorm sharing its parameters and buffers
        (as PyTorch: convert before wrapping in DistributedDataParallel and building the optimizer)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            state = [t for t in (*module._parameters.values(), *module._buffers.values()) if t is not None]
            sync = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                       dtype=state[0].dtype if state else None, bias=module.bias is not None)
            for name, param in module._parameters.items():
                if isinstance(param, Parameter):
                    sync.register_parameter(name, param)
            for name, buffer in module._buffers.items():
                sync.register_buffer(name, buffer)
            sync.train(module.training)
            return sync
        for name, child in list(module._modules.items()):
            if child is not None:
                module._modules[name] = cls.convert_sync_batchnorm(child)
        return module
