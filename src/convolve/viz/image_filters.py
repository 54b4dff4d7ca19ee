"""Classic image filters as convolutions with `F.conv2d`, and how the padding mode changes the border.

Kernels are given as `F.conv2d` applies them: cross-correlation (no flip), so `SOBEL_X` answers +4 on a step
that rises from left to right (a positive d/dx). Each channel is filtered on its own; the image is padded by
(k - 1) / 2 on each side with `F.pad` first, so the output has the input's size. Padding modes: 'zeros',
'constant' (with `value`), 'reflect' (mirror without repeating the edge), 'replicate' (repeat the edge), 'circular'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import convolve.nn.functional as F
from convolve.autograd import no_grad
from convolve.tensor import Tensor
from convolve.viz._figure import check_path, finish, new_figure, show_image

PADDING_MODES = ("zeros", "constant", "reflect", "replicate", "circular")
SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = SOBEL_X.T.copy()
SHARPEN = np.array([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]])
LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _check_size(fn: str, size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1 or size % 2 == 0:
        raise ValueError(f"{fn}: `size` must be a positive odd int (the output keeps the input's size), got {size!r}")
    return int(size)


def box_kernel(size: int = 3) -> np.ndarray:
    """(size, size) mean filter: every weight 1 / size^2."""
    n = _check_size("box_kernel", size)
    return np.full((n, n), 1.0 / (n * n))


def gaussian_kernel(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """(size, size) Gaussian exp(-(x^2 + y^2) / (2 sigma^2)) centred on the middle tap, normalized to sum 1."""
    n = _check_size("gaussian_kernel", size)
    if not isinstance(sigma, int | float) or isinstance(sigma, bool) or not sigma > 0:
        raise ValueError(f"gaussian_kernel: `sigma` must be a positive number, got {sigma!r}")
    t = np.arange(n) - (n - 1) / 2
    g = np.exp(-(t**2) / (2.0 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def _as_chw(fn: str, image: Any) -> tuple[np.ndarray, bool]:
    """(H, W) or (C, H, W) numbers -> (C, H, W) float64 and whether the input was 2-D."""
    img = np.asarray(getattr(image, "data", image))
    if img.dtype.kind not in "fiu" or img.ndim not in (2, 3):
        raise ValueError(f"{fn}: `image` must be a 2-D (H, W) or 3-D (C, H, W) array of numbers, "
                         f"got shape {img.shape} dtype {img.dtype}")
    return (img[None] if img.ndim == 2 else img).astype(np.float64), img.ndim == 2


def apply_filter(image: Any, kernel: Any, padding_mode: str = "zeros", value: float = 0.0) -> np.ndarray:
    """Filter every channel of `image` ((H, W) or (C, H, W)) with an odd (k, k) `kernel`; same-size output."""
    fn = "apply_filter"
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{fn}: `padding_mode` must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    if padding_mode != "constant" and value != 0.0:
        raise ValueError(f"{fn}: `value` only applies to padding_mode='constant', got value={value!r} "
                         f"with padding_mode={padding_mode!r}")
    img, flat = _as_chw(fn, image)  # (C, H, W)
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"{fn}: `kernel` must be a 2-D array with odd height and width, got shape {k.shape}")
    padded = _pad(img, k.shape[0] // 2, k.shape[1] // 2, padding_mode, value)  # (C, H + 2ph, W + 2pw)
    with no_grad():
        out = F.conv2d(Tensor(padded[:, None]), Tensor(k[None, None]))  # (C, 1, H, W): channels as a batch
    result = np.asarray(out.data)[:, 0]
    return result[0] if flat else result


def _pad(img: np.ndarray, ph: int, pw: int, padding_mode: str, value: float) -> np.ndarray:
    """(C, H, W) -> (C, H + 2 ph, W + 2 pw) with `F.pad` ('zeros' is constant 0)."""
    mode = "constant" if padding_mode in ("zeros", "constant") else padding_mode
    with no_grad():
        out = F.pad(Tensor(img), (pw, pw, ph, ph), mode=mode, value=value if mode == "constant" else None)
    return np.asarray(out.data)


def sobel_magnitude(image: Any, padding_mode: str = "zeros", value: float = 0.0) -> np.ndarray:
    """sqrt(Gx^2 + Gy^2) with the 3x3 Sobel kernels: the strength of edges of any orientation."""
    gx = apply_filter(image, SOBEL_X, padding_mode, value)
    gy = apply_filter(image, SOBEL_Y, padding_mode, value)
    return np.sqrt(gx**2 + gy**2)


def classic_filters() -> dict[str, Callable[[np.ndarray, str, float], np.ndarray]]:
    """name -> f(image, padding_mode, value), the filters of the lecture in display order."""
    def kernel(k: np.ndarray) -> Callable[[np.ndarray, str, float], np.ndarray]:
        return lambda img, mode, value: apply_filter(img, k, mode, value)

    return {"box 3x3": kernel(box_kernel(3)), "gaussian 5x5, sigma 1": kernel(gaussian_kernel(5, 1.0)),
            "sobel x": kernel(SOBEL_X), "sobel y": kernel(SOBEL_Y), "sobel magnitude": sobel_magnitude,
            "sharpen": kernel(SHARPEN), "laplacian": kernel(LAPLACIAN)}


DEMO_PADDINGS: tuple[tuple[str, str, float], ...] = (
    ("zeros", "zeros", 0.0), ("constant 1", "constant", 1.0), ("reflect", "reflect", 0.0),
    ("replicate", "replicate", 0.0),
)


def demo_image(size: int = 32) -> np.ndarray:
    """A (size, size) test picture in [0, 1]: a bright background ramp, a white square and a dark disc."""
    t = np.linspace(0.0, 1.0, size)
    img = 0.55 + 0.35 * t[None, :] * np.ones((size, 1))  # bright up to the border: zero padding shows
    q = size // 4
    img[q : 2 * q, q : 2 * q] = 1.0
    yy, xx = np.mgrid[:size, :size]
    img[(yy - 2.6 * q) ** 2 + (xx - 2.6 * q) ** 2 <= (0.9 * q) ** 2] = 0.05
    return img


def plot_filters_demo(image: Any = None, path: str | Path | None = None, *,
                      paddings: Sequence[tuple[str, str, float]] = DEMO_PADDINGS, dpi: int = 80) -> Any:
    """Rows: the classic filters; columns: padding modes (zeros, constant 1, reflect, replicate); the Figure.

    `image` is (H, W) or (C, H, W) (the first channel is used; default `demo_image()`). Each row shares one
    colour scale, so the border effect of each padding mode can be compared across the row.
    """
    fn = "plot_filters_demo"
    out_path = check_path(fn, path)
    img = demo_image() if image is None else _as_chw(fn, image)[0][0]
    filters = classic_filters()
    rows, cols = len(filters) + 1, len(paddings)
    fig = new_figure(fn, 1.55 * cols + 0.6, 1.45 * rows, dpi)
    for j, (label, mode, value) in enumerate(paddings):
        padded = _pad(img[None], 3, 3, mode, value)[0]  # 3 pixels, to show what each mode adds
        show_image(fig.add_subplot(rows, cols, j + 1), padded, f"padded: {label}", vmin=0.0, vmax=1.0)
    for i, (name, f) in enumerate(filters.items(), start=1):
        outputs = [f(img, mode, value) for _, mode, value in paddings]
        lo, hi = min(o.min() for o in outputs), max(o.max() for o in outputs)
        for j, out in enumerate(outputs):
            ax = fig.add_subplot(rows, cols, i * cols + j + 1)
            show_image(ax, out, None, vmin=lo, vmax=hi if hi > lo else lo + 1)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout(pad=0.3)
    return finish(fig, out_path)
