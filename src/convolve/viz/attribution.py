"""Which input pixels a class score depends on: saliency and Grad-CAM, as NumPy maps (drawing is elsewhere).

- Saliency (Simonyan et al. 2014): |d score_t / d input|, the maximum over input channels, (H, W).
- Grad-CAM (Selvaraju et al. 2017) at conv layer L with maps A^k: alpha_k = spatial mean of d score_t / d A^k,
  cam = ReLU(sum_k alpha_k A^k), bilinearly upsampled to the input size (PyTorch's `align_corners=False`); as in
  the paper, the (h, w) map is stretched over the whole input (the layer's receptive-field offsets are ignored).
  The layer defaults to the last conv layer with maps larger than 1x1, or the activation layer right after it.
The score is the model's raw output (logit) for class t, before any softmax; t defaults to the predicted class.
Both run in eval mode and leave the parameters' `.grad` as they were. A map that comes out all zeros or with
non-finite values is returned with a warning that says why, never silently.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from convolve import nn
from convolve.autograd import enable_grad, no_grad
from convolve.nn.functional.upsample import _linear_matrix  # the bilinear weights F.interpolate uses
from convolve.tensor import Tensor
from convolve.viz._layers import (
    as_batch,
    check_model,
    class_index,
    eval_mode,
    find_layer,
    keep_param_grads,
    last_spatial_conv,
    recording,
    run_model,
)


def _scores(fn: str, output: Any) -> Tensor:
    if not isinstance(output, Tensor) or output.ndim != 2 or output.shape[0] != 1:
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(f"{fn}: the model must return class scores of shape (1, num_classes), got {shape}")
    return output


def _backward_from(scores: Tensor, target: int) -> None:
    seed = np.zeros(scores.shape, dtype=scores.dtype)
    seed[0, target] = 1.0
    scores.backward(seed)


def predict_class(model: nn.Module, input: Any) -> int:
    """The arg-max class of the model's scores for one image (eval mode, no gradients)."""
    fn = "predict_class"
    check_model(fn, model)
    x = as_batch(fn, input, model)
    with eval_mode(model), no_grad():
        scores = _scores(fn, run_model(fn, model, Tensor(x)))
    return class_index(fn, None, np.asarray(scores.data))


def saliency(model: nn.Module, input: Any, target: int | None = None) -> np.ndarray:
    """(H, W) max over channels of |d score_target / d input| for one image (C, H, W) or (1, C, H, W)."""
    fn = "saliency"
    check_model(fn, model)
    x = Tensor(as_batch(fn, input, model), requires_grad=True)  # (1, C, H, W)
    with eval_mode(model), enable_grad(), keep_param_grads(model):
        scores = _scores(fn, run_model(fn, model, x))
        _backward_from(scores, class_index(fn, target, np.asarray(scores.data)))
    if x.grad is None:
        _warn(fn, "the class score does not depend on the input through the graph (the model's forward cuts it, "
                  "e.g. with .detach(), .data, .numpy() or no_grad); the map is all zeros")
        return np.zeros(x.shape[2:])
    heat = np.abs(np.asarray(x.grad.data, dtype=np.float64)[0]).max(axis=0)
    _check_map(fn, heat, "the gradient of the class score with respect to every input pixel is zero (e.g. the "
                         "score saturated, or dead ReLUs block every path)")
    return heat


def grad_cam(model: nn.Module, input: Any, layer: str | None = None, target: int | None = None,
             upsample: bool = True) -> np.ndarray:
    """Grad-CAM of class `target` at `layer` (any layer with (1, C, h, w) output; default: the last conv layer
    with maps larger than 1x1, or the activation layer right after it): an (H, W) map at the input's size, or
    the layer's (h, w) when `upsample` is False."""
    fn = "grad_cam"
    check_model(fn, model)
    if layer is None:
        layer = last_spatial_conv(fn, model, as_batch(fn, input, model), activation=True)
    find_layer(fn, model, layer)
    x = Tensor(as_batch(fn, input, model), requires_grad=True)  # so that A has a graph even with frozen weights
    with eval_mode(model), enable_grad(), keep_param_grads(model), recording(model, [layer]) as outputs:
        scores = _scores(fn, run_model(fn, model, x))
        if layer not in outputs or outputs[layer].ndim != 4:
            got = tuple(outputs[layer].shape) if layer in outputs else "nothing (not called)"
            raise ValueError(f"{fn}: layer {layer!r} must output (1, C, h, w) maps, got {got}")
        maps = outputs[layer]
        maps.retain_grad()
        _backward_from(scores, class_index(fn, target, np.asarray(scores.data)))
    a = np.asarray(maps.data, dtype=np.float64)[0]  # (K, h, w)
    grads = np.zeros_like(a) if maps.grad is None else np.asarray(maps.grad.data, dtype=np.float64)[0]
    alpha = grads.mean(axis=(1, 2))  # (K,)
    cam = np.maximum(np.tensordot(alpha, a, axes=1), 0.0)  # (h, w)
    _check_map(fn, cam, _zero_cam_reason(layer, maps.grad is None, grads, alpha, a))
    return bilinear_resize(cam, (x.shape[2], x.shape[3])) if upsample else cam


def _zero_cam_reason(layer: str, no_grad_path: bool, grads: np.ndarray, alpha: np.ndarray, a: np.ndarray) -> str:
    """Why a Grad-CAM map is all zeros, in words a user can act on."""
    if no_grad_path:
        return f"the class score does not depend on layer {layer!r} (it is not on the path to the output)"
    if not grads.any():
        return f"the gradient of the class score at layer {layer!r} is zero everywhere (e.g. dead ReLUs)"
    if (a < 0).any():
        return (f"the weighted sum of the maps of layer {layer!r} is negative everywhere; its maps are taken before "
                "the activation (a ReLU applied functionally in forward, F.relu, is not a layer), so pass the "
                "activation layer after it, or write the ReLU as an nn.ReLU module")
    return (f"no map of layer {layer!r} has a positive weight for this class (alpha <= 0 for all "
            f"{len(alpha)} channels); try another layer or class")


def _check_map(fn: str, heat: np.ndarray, zero_reason: str) -> None:
    if not np.isfinite(heat).all():
        _warn(fn, "the map has non-finite values (NaN or infinity): the model's scores or gradients overflowed "
                  "for this input; check the input's scale and normalization")
    elif not heat.any():
        _warn(fn, f"the map is all zeros: {zero_reason}")


def _warn(fn: str, message: str) -> None:
    warnings.warn(f"{fn}: {message}", UserWarning, stacklevel=3)


def bilinear_resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) -> (H, W) bilinear resize, as F.interpolate(mode='bilinear', align_corners=False) in PyTorch."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"bilinear_resize: `a` must be 2-D (h, w), got shape {a.shape}")
    rows = _linear_matrix(a.shape[0], size[0], a.shape[0] / size[0], False)  # (out_h, h)
    cols = _linear_matrix(a.shape[1], size[1], a.shape[1] / size[1], False)  # (out_w, w)
    return rows @ a @ cols.T
