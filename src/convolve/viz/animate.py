"""The numbers of an animated convolution: a window sliding over a grid, one output cell per step.

`sweep(mode, ...)` returns a `Sweep`: the grid the window slides over (the padded input, or for the backward
pass the output gradient spread out), the kernels, and one `Step` per output cell with the values under the
window, their products with the kernel and the cell's value, each computed by convolve's ops on exactly the
arrays drawn. The modes:

- `conv`: y = conv2d(x, w, b) with any kernel, stride, padding (zeros/reflect/replicate/circular), dilation,
  channels and groups; each cell sums the products over its window and input channels, plus the bias.
- `max-pool` / `avg-pool`: the window's max or mean per channel (max pooling pads with -inf).
- `backward-input`: dL/dx as a full convolution of the output gradient with the flipped kernel: the gradient
  with stride-1 zeros between its cells and D(F-1) zeros around it, then the padding cropped off.
- `backward-weight`: dL/dw as a correlation of the padded input with the (stride-spread) output gradient.

`animate(path, mode, ...)` computes the sweep and draws it as an animated GIF (Pillow, see `_gif.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import convolve.nn.functional as F
from convolve.nn.functional.geometry import parse_padding, sliding_output_size
from convolve.tensor import Tensor

MODES = ("conv", "max-pool", "avg-pool", "backward-input", "backward-weight")
MAX_GRID = 12  # cells per side of the grid the window slides over
MAX_CHANNELS = 3  # grid planes drawn one above the other
MAX_OUTPUTS = 4  # output planes
MAX_STEPS = 160  # frames


@dataclass(frozen=True)
class Step:
    """One output cell: its position, the grid cells under the window, their values and products, the result."""

    plane: int
    row: int
    col: int
    sources: tuple[int, ...]  # grid planes read
    rows: tuple[int, ...]  # grid rows under the window (kernel row u -> rows[u])
    cols: tuple[int, ...]
    window: np.ndarray  # (len(sources), kh, kw) values under the window
    products: np.ndarray | None  # window x kernel (None for pooling)
    value: float


@dataclass
class Sweep:
    """A window sliding over `grid`, producing `result`; `final` is what the operation returns (cropped)."""

    mode: str
    title: str
    grid: np.ndarray  # (G, Hg, Wg)
    is_data: np.ndarray  # (Hg, Wg) True where the grid holds input/gradient values (not padding or zeros put in)
    kernels: np.ndarray | None  # (O, S, kh, kw) the kernel each output plane uses
    window: tuple[int, int]  # (kh, kw)
    bias: np.ndarray | None  # (O,)
    stride: int
    dilation: int
    labels: tuple[str, str, str]  # grid, kernel, output
    steps: list[Step] = field(default_factory=list)
    result: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # (O, oh, ow) from the steps
    final: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # cropped / reshaped result
    final_label: str = ""
    crop: tuple[int, int, int, int] | None = None  # (top, left, height, width) of `final` inside `result`


def _int_pair(value: Any, name: str) -> tuple[int, int]:
    values = (value, value) if not isinstance(value, tuple | list) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        raise ValueError(f"animate: `{name}` must be an int or a pair of ints, got {value!r}")
    return int(values[0]), int(values[1])


def _readable(what: str, shape: Sequence[int], limit: int, hint: str) -> None:
    if any(n > limit for n in shape):
        raise ValueError(f"animate: {what} would be {'x'.join(map(str, shape))} cells; a frame stays readable up to "
                         f"{limit}x{limit}: {hint}")


def _check_sizes(grid: np.ndarray, outputs: int, steps: int) -> None:
    _readable("the grid the window slides over", grid.shape[1:], MAX_GRID,
              "use a smaller input, padding, stride or dilation")
    if grid.shape[0] > MAX_CHANNELS:
        raise ValueError(f"animate: {grid.shape[0]} grid channels; at most {MAX_CHANNELS} are drawn readably")
    if outputs > MAX_OUTPUTS:
        raise ValueError(f"animate: {outputs} output planes; at most {MAX_OUTPUTS} are drawn readably "
                         f"(fewer out channels)")
    if steps > MAX_STEPS:
        raise ValueError(f"animate: {steps} output cells (one frame each); at most {MAX_STEPS} make a watchable "
                         f"animation: use a smaller input or fewer channels")


def _run(s: Sweep, sources: Sequence[tuple[int, ...]], out_hw: tuple[int, int], reduce: str) -> Sweep:
    """Slide the window: every cell's value from convolve's ops on the displayed numbers."""
    planes = len(sources)
    _check_sizes(s.grid, planes, planes * out_hw[0] * out_hw[1])
    kh, kw = s.window
    grid = Tensor(s.grid)
    s.result = np.zeros((planes, *out_hw))
    for o, src in enumerate(sources):
        for i in range(out_hw[0]):
            for j in range(out_hw[1]):
                rows = tuple(i * s.stride + u * s.dilation for u in range(kh))
                cols = tuple(j * s.stride + v * s.dilation for v in range(kw))
                window = grid[list(src)][:, list(rows)][:, :, list(cols)]  # (S, kh, kw)
                products = None
                if reduce == "sum":
                    products = window * Tensor(s.kernels[o])  # type: ignore[index]
                    total = products.sum() + (float(s.bias[o]) if s.bias is not None else 0.0)
                else:
                    total = window.max() if reduce == "max" else window.mean()
                value = float(total.item())
                s.result[o, i, j] = value
                s.steps.append(Step(o, i, j, src, rows, cols, window.numpy(),
                                    None if products is None else products.numpy(), value))
    return s


def _as3d(name: str, a: Any) -> np.ndarray:
    a = np.asarray(a.numpy() if isinstance(a, Tensor) else a, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"animate: `{name}` must be (C, H, W), got shape {a.shape}")
    return a


def _padded(x: np.ndarray, pads: tuple[tuple[int, int], ...], mode: str, value: float = 0.0) -> tuple[np.ndarray,
                                                                                                        np.ndarray]:
    """(x padded by F.pad, mask of the original cells)."""
    (t, b), (left, r) = pads
    f_mode = {"zeros": "constant", "-inf": "constant"}.get(mode, mode)
    xp = F.pad(Tensor(x[None]), (left, r, t, b), mode=f_mode, value=value if f_mode == "constant" else None)
    mask = np.zeros(xp.shape[2:], dtype=bool)
    mask[t:t + x.shape[1], left:left + x.shape[2]] = True
    return xp.numpy()[0], mask


def conv_sweep(x: Any, weight: Any, bias: Any = None, stride: int = 1, padding: Any = 0, dilation: int = 1,
               groups: int = 1, padding_mode: str = "zeros") -> Sweep:
    """The forward convolution y = conv2d(pad(x), w) + b, one output cell per step."""
    x, w = _as3d("input", x), np.asarray(weight, dtype=np.float64)
    k, cg, kh, kw = w.shape
    pads = parse_padding("animate", padding, (kh, kw), (stride, stride), (dilation, dilation))
    xp, mask = _padded(x, pads, padding_mode)
    out_hw = tuple(sliding_output_size(n, kk, stride, 0, dilation) for n, kk in zip(xp.shape[1:], (kh, kw)))
    if min(out_hw) < 1:
        raise ValueError(f"animate: the dilated {kh}x{kw} kernel is larger than the padded input "
                         f"{xp.shape[1]}x{xp.shape[2]}")
    kg = k // groups
    sources = [tuple(range((o // kg) * cg, (o // kg + 1) * cg)) for o in range(k)]
    b = None if bias is None else np.asarray(bias, dtype=np.float64)
    s = Sweep("conv", f"convolution: {kh}x{kw} kernel, stride {stride}, padding {padding} ({padding_mode}), "
                      f"dilation {dilation}", xp, mask, w, (kh, kw), b, stride, dilation,
              ("padded input", "kernel", "output"))
    _run(s, sources, out_hw, "sum")  # type: ignore[arg-type]
    s.final, s.final_label = s.result, "output"
    return s


def pool_sweep(x: Any, kind: str, kernel_size: int, stride: int | None = None, padding: int = 0,
               dilation: int = 1) -> Sweep:
    """Max or average pooling (PyTorch's count_include_pad=True average), one output cell per step."""
    x = _as3d("input", x)
    stride = kernel_size if stride is None else stride
    mode = "-inf" if kind == "max" else "zeros"
    xp, mask = _padded(x, ((padding, padding), (padding, padding)), mode, -np.inf if kind == "max" else 0.0)
    out_hw = tuple(sliding_output_size(n, kernel_size, stride, padding, dilation) for n in x.shape[1:])
    if min(out_hw) < 1:
        raise ValueError(f"animate: the {kernel_size}x{kernel_size} window is larger than the padded input")
    s = Sweep(f"{kind}-pool", f"{kind} pooling: {kernel_size}x{kernel_size} window, stride {stride}, padding "
                              f"{padding} ({mode})", xp, mask, None, (kernel_size, kernel_size), None, stride,
              dilation, ("padded input", "window", "output"))
    _run(s, [(c,) for c in range(x.shape[0])], out_hw, "max" if kind == "max" else "mean")  # type: ignore[arg-type]
    s.final, s.final_label = s.result, "output"
    return s


def _spread(g: np.ndarray, stride: int, border: tuple[int, int], extra: tuple[int, int]) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """(G, oh, ow) -> stride-1 zeros between the cells, `border` (rows, cols) zeros around, `extra` more at the
    bottom/right."""
    c, oh, ow = g.shape
    hs, ws = (oh - 1) * stride + 1, (ow - 1) * stride + 1
    (bh, bw) = border
    out = np.zeros((c, hs + 2 * bh + extra[0], ws + 2 * bw + extra[1]))
    mask = np.zeros(out.shape[1:], dtype=bool)
    out[:, bh:bh + hs:stride, bw:bw + ws:stride] = g
    mask[bh:bh + hs:stride, bw:bw + ws:stride] = True
    return out, mask


def backward_input_sweep(x_shape: Sequence[int], weight: Any, grad_output: Any, stride: int = 1, padding: Any = 0,
                         dilation: int = 1, groups: int = 1) -> Sweep:
    """dL/dx of conv2d (zero padding): the spread output gradient convolved with the flipped kernels, cropped."""
    w, g = np.asarray(weight, dtype=np.float64), _as3d("grad_output", grad_output)
    k, cg, kh, kw = w.shape
    c, h, wd = x_shape
    pads = parse_padding("animate", padding, (kh, kw), (stride, stride), (dilation, dilation))
    padded = (h + sum(pads[0]), wd + sum(pads[1]))
    covered = tuple((n - 1) * stride + dilation * (kk - 1) + 1 for n, kk in zip(g.shape[1:], (kh, kw)))
    border = dilation * (kh - 1), dilation * (kw - 1)
    grid, mask = _spread(g, stride, border, (padded[0] - covered[0], padded[1] - covered[1]))
    kg = k // groups
    flipped = w[:, :, ::-1, ::-1]  # (K, C/groups, kh, kw), rotated by 180 degrees
    kernels = np.stack([flipped[(ci // cg) * kg:(ci // cg + 1) * kg, ci % cg] for ci in range(c)])  # (C, K/g, ..)
    sources = [tuple(range((ci // cg) * kg, (ci // cg + 1) * kg)) for ci in range(c)]
    s = Sweep("backward-input", f"input gradient: output gradient (stride {stride} spread, D(F-1) zeros "
                                f"around) * flipped kernel, dilation {dilation}", grid, mask, kernels, (kh, kw), None,
              1, dilation, ("output gradient, spread", "flipped kernel", "gradient of the padded input"))
    _run(s, sources, padded, "sum")
    (t, _), (left, _) = pads
    s.final, s.final_label = s.result[:, t:t + h, left:left + wd], "input gradient (padding cropped)"
    s.crop = (t, left, h, wd)
    return s


def backward_weight_sweep(x: Any, grad_output: Any, kernel_size: Any, stride: int = 1, padding: Any = 0,
                          dilation: int = 1, groups: int = 1, padding_mode: str = "zeros") -> Sweep:
    """dL/dw of conv2d: each (filter, channel) pair correlates the padded input with the spread output gradient."""
    x, g = _as3d("input", x), _as3d("grad_output", grad_output)
    kh, kw = _int_pair(kernel_size, "kernel_size")
    k, c = g.shape[0], x.shape[0]
    cg, kg = c // groups, k // groups
    pads = parse_padding("animate", padding, (kh, kw), (stride, stride), (dilation, dilation))
    xp, mask = _padded(x, pads, padding_mode)
    spread, _ = _spread(g, stride, (0, 0), (0, 0))  # (K, hs, ws)
    pairs = [(ko, ci) for ko in range(k) for ci in range(cg)]
    kernels = np.stack([spread[ko][None] for ko, _ in pairs])  # (K*C/g, 1, hs, ws)
    sources = [((ko // kg) * cg + ci,) for ko, ci in pairs]
    s = Sweep("backward-weight", f"weight gradient: padded input correlated with the output gradient (stride "
                                 f"{stride} spread), step {dilation}", xp, mask, kernels, spread.shape[1:], None,
              dilation, 1, ("padded input", "output gradient, spread", "weight gradient"))  # moves by the dilation
    _run(s, sources, (kh, kw), "sum")
    s.final, s.final_label = s.result.reshape(k, cg, kh, kw), "weight gradient"
    return s


def example_arrays(input_size: Sequence[int], out_channels: int, kernel_size: tuple[int, int], groups: int,
                   bias: bool, seed: int) -> dict[str, Any]:
    """Small integers that stay readable in a cell: input 0..3, weights -1..1, bias -1..1."""
    rng = np.random.default_rng(seed)
    c = input_size[0]
    return {"input": rng.integers(0, 4, size=tuple(input_size)).astype(np.float64),
            "weight": rng.integers(-1, 2, size=(out_channels, c // groups, *kernel_size)).astype(np.float64),
            "bias": rng.integers(-1, 2, size=out_channels).astype(np.float64) if bias else None}


def sweep(mode: str, input_size: Sequence[int] = (1, 5, 5), out_channels: int = 1, kernel_size: Any = 3,
          stride: int = 1, padding: Any = 0, dilation: int = 1, groups: int = 1, padding_mode: str = "zeros",
          bias: bool = False, seed: int = 0) -> Sweep:
    """The sweep of `mode` (see the module docstring) on seeded small-integer example arrays.

    For the backward modes the output gradient is a seeded small-integer array of the forward output's shape.
    """
    if mode not in MODES:
        raise ValueError(f"animate: `mode` must be one of {', '.join(MODES)}, got {mode!r}")
    for name, v in (("stride", stride), ("dilation", dilation), ("groups", groups), ("out_channels", out_channels)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"animate: `{name}` must be a positive int, got {v!r}")
    if len(input_size) != 3 or any(n < 1 for n in input_size):
        raise ValueError(f"animate: `input_size` must be (C, H, W) positive ints, got {tuple(input_size)}")
    _readable("the input", input_size[1:], MAX_GRID, "use at most 12x12")
    ks = _int_pair(kernel_size, "kernel_size")
    if mode in ("max-pool", "avg-pool"):
        if ks[0] != ks[1] or not isinstance(padding, int):
            raise ValueError("animate: pooling animations take a square kernel and an int padding")
        x = example_arrays(input_size, 1, ks, 1, False, seed)["input"]
        return pool_sweep(x, mode[:3], ks[0], stride, padding, dilation)
    if input_size[0] % groups or out_channels % groups:
        raise ValueError(f"animate: in channels ({input_size[0]}) and `out_channels` ({out_channels}) must be "
                         f"divisible by `groups` (={groups})")
    arrays = example_arrays(input_size, out_channels, ks, groups, bias, seed)
    fwd = conv_sweep(arrays["input"], arrays["weight"], arrays["bias"], stride, padding, dilation, groups,
                     padding_mode)
    if mode == "conv":
        return fwd
    g = np.random.default_rng(seed + 1).integers(-1, 3, size=fwd.final.shape).astype(np.float64)
    if mode == "backward-input":
        if padding_mode != "zeros":
            raise ValueError("animate: backward-input shows zero padding only (with reflect/replicate/circular "
                             "padding the gradients of the copied border pixels are added back)")
        return backward_input_sweep(input_size, arrays["weight"], g, stride, padding, dilation, groups)
    return backward_weight_sweep(arrays["input"], g, ks, stride, padding, dilation, groups, padding_mode)


def animate(path: str | Path, mode: str = "conv", input_size: Sequence[int] = (1, 5, 5), *, fps: float = 2.0,
            **params: Any) -> Sweep:
    """Write the animated GIF of `sweep(mode, input_size, **params)` to `path` (.gif); returns the Sweep."""
    from convolve.viz._gif import write_gif

    s = sweep(mode, input_size, **params)
    write_gif(s, path, fps)
    return s
