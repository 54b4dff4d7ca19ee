"""Drawing a `Sweep` (see `animate.py`) as frames with Pillow and writing them as an animated GIF.

Each frame shows, left to right: the grid the window slides over (padding and inserted zeros in grey, the
window's cells in blue), the kernel (or, for pooling, the window's values), the products, and the output filling
in (the current cell in orange). The line below spells out the sum for the current cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convolve.viz.animate import Step, Sweep

CELL = 24  # pixels per cell
GAP = 8  # between planes and panels
TOP = 40  # title and panel labels
BOTTOM = 26  # the equation line
WHITE, GREY, TEXT, FAINT = (255, 255, 255), (228, 228, 228), (20, 20, 20), (150, 150, 150)
BLUE_FILL, BLUE, ORANGE, RED, EMPTY = (207, 227, 255), (30, 90, 200), (255, 213, 158), (200, 30, 30), (247, 247, 247)
INSTALL_HINT = "pip install 'convolve[viz]' (or pip install pillow)"


def require_pillow(fn: str) -> Any:
    """The PIL package, or an ImportError telling how to install it."""
    try:
        import PIL.Image
        import PIL.ImageDraw
        import PIL.ImageFont
    except ImportError as e:
        raise ImportError(f"{fn}: animations need Pillow, which is not installed; {INSTALL_HINT}") from e
    return PIL


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _fmt(v: float) -> str:
    if np.isneginf(v):
        return "-inf"
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


class _Canvas:
    """An RGB image with helpers to draw cell grids and text."""

    def __init__(self, width: int, height: int) -> None:
        from PIL import Image, ImageDraw

        self.image = Image.new("RGB", (width, height), WHITE)
        self.draw = ImageDraw.Draw(self.image)
        self.font, self.small, self.title = _font(11), _font(9), _font(12)

    def cell(self, x: int, y: int, text: str, fill: tuple[int, int, int], ink: tuple[int, int, int] = TEXT,
             outline: tuple[int, int, int] = FAINT, width: int = 1) -> None:
        self.draw.rectangle((x, y, x + CELL, y + CELL), fill=fill, outline=outline, width=width)
        font = self.font if len(text) <= 3 else self.small
        self.draw.text((x + CELL / 2, y + CELL / 2), text, fill=ink, font=font, anchor="mm")

    def text(self, x: float, y: float, text: str, font: Any = None, fill: tuple[int, int, int] = TEXT) -> None:
        self.draw.text((x, y), text, fill=fill, font=font or self.font)


def _plane_height(rows: int, planes: int) -> int:
    return planes * rows * CELL + (planes - 1) * GAP


class _Layout:
    """Panel x positions and sizes for one sweep (the same in every frame)."""

    def __init__(self, s: Sweep) -> None:
        g, hg, wg = s.grid.shape
        kh, kw = s.window
        per_output = s.kernels.shape[1] if s.kernels is not None else 1
        o, oh, ow = s.result.shape
        self.panels: list[tuple[str, int, int]] = [(s.labels[0], wg, _plane_height(hg, g))]
        self.panels.append((s.labels[1], kw, _plane_height(kh, per_output)))
        if s.kernels is not None:
            self.panels.append(("products", kw, _plane_height(kh, per_output)))
        self.panels.append((s.labels[2], ow, _plane_height(oh, o)))
        self.x = []
        x = GAP
        for label, cols, _ in self.panels:
            self.x.append(x)
            x += max(cols * CELL, 7 * len(label)) + 3 * GAP
        self.width = x
        self.height = TOP + max(h for _, _, h in self.panels) + BOTTOM + GAP


def _grid_panel(c: _Canvas, s: Sweep, x0: int, step: Step | None) -> None:
    window = set()
    if step is not None:
        window = {(p, r, q) for p in step.sources for r in step.rows for q in step.cols}
    for p in range(s.grid.shape[0]):
        y0 = TOP + p * (s.grid.shape[1] * CELL + GAP)
        for r in range(s.grid.shape[1]):
            for q in range(s.grid.shape[2]):
                on = (p, r, q) in window
                fill = BLUE_FILL if on else (WHITE if s.is_data[r, q] else GREY)
                ink = TEXT if s.is_data[r, q] else FAINT
                c.cell(x0 + q * CELL, y0 + r * CELL, _fmt(s.grid[p, r, q]), fill, ink, BLUE if on else FAINT,
                       2 if on else 1)


def _small_panel(c: _Canvas, x0: int, values: np.ndarray, mark: tuple[int, int, int] | None = None) -> None:
    """(S, kh, kw) values as S stacked grids; `mark` outlines one cell (the max of a max-pooling window)."""
    for p in range(values.shape[0]):
        y0 = TOP + p * (values.shape[1] * CELL + GAP)
        for r in range(values.shape[1]):
            for q in range(values.shape[2]):
                hit = mark == (p, r, q)
                c.cell(x0 + q * CELL, y0 + r * CELL, _fmt(values[p, r, q]), WHITE, TEXT, RED if hit else FAINT,
                       2 if hit else 1)


def _output_panel(c: _Canvas, s: Sweep, x0: int, done: int, current: Step | None) -> None:
    filled = {(st.plane, st.row, st.col) for st in s.steps[:done]}
    o, oh, ow = s.result.shape
    for p in range(o):
        y0 = TOP + p * (oh * CELL + GAP)
        for r in range(oh):
            for q in range(ow):
                now = current is not None and (current.plane, current.row, current.col) == (p, r, q)
                if (p, r, q) in filled:
                    c.cell(x0 + q * CELL, y0 + r * CELL, _fmt(s.result[p, r, q]), ORANGE if now else WHITE)
                else:
                    c.cell(x0 + q * CELL, y0 + r * CELL, "", EMPTY, outline=GREY)
        if s.crop is not None and current is None:  # the closing frame: what is kept after cropping the padding
            top, left, h, w = s.crop
            c.draw.rectangle((x0 + left * CELL, y0 + top * CELL, x0 + (left + w) * CELL, y0 + (top + h) * CELL),
                             outline=RED, width=3)


def _equation(s: Sweep, step: Step) -> str:
    where = f"{s.labels[2]}[{step.plane}, {step.row}, {step.col}]"
    if step.products is None:
        rule = "max" if s.mode == "max-pool" else "mean"
        return f"{where} = {rule} of the {step.window.size} values in the window = {_fmt(step.value)}"
    terms = [_fmt(v) for v in step.products.ravel()]
    total = " + ".join(terms).replace("+ -", "- ")
    if len(terms) > 12 and len(step.sources) == 1:
        total = f"sum of the {len(terms)} products"
    elif len(terms) > 12:  # one sum per input channel
        sums = [_fmt(float(v)) for v in step.products.sum(axis=(1, 2))]
        total = "the sums over " + " + ".join(f"channel {c}: {v}" for c, v in zip(step.sources, sums))
    b = None if s.bias is None else _fmt(s.bias[step.plane])
    bias = "" if b is None else f" + bias {b}" if not b.startswith("-") else f" + bias ({b})"
    return f"{where} = {total}{bias} = {_fmt(step.value)}"


def render_frame(s: Sweep, done: int) -> Any:
    """The frame after `done` output cells (the last one current); done = len(steps) + 1 is the closing frame."""
    lay = _Layout(s)
    c = _Canvas(lay.width, lay.height)
    step = s.steps[done - 1] if 0 < done <= len(s.steps) else None
    c.text(GAP, 4, s.title, c.title)
    for (label, _, _), x in zip(lay.panels, lay.x):
        c.text(x, TOP - 16, label, c.small, FAINT)
    _grid_panel(c, s, lay.x[0], step)
    if step is not None:
        kernel = s.kernels[step.plane] if s.kernels is not None else step.window
        mark = None
        if s.mode == "max-pool":
            mark = tuple(int(i) for i in np.unravel_index(int(np.argmax(step.window)), step.window.shape))
        _small_panel(c, lay.x[1], kernel, mark)  # type: ignore[arg-type]
        if step.products is not None:
            _small_panel(c, lay.x[2], step.products)
        c.text(GAP, lay.height - BOTTOM, _equation(s, step))
    else:
        c.text(GAP, lay.height - BOTTOM, f"{s.final_label}: shape {'x'.join(map(str, s.final.shape))}")
    _output_panel(c, s, lay.x[-1], min(done, len(s.steps)), step)
    return c.image


def write_gif(s: Sweep, path: str | Path, fps: float = 2.0) -> Path:
    """All frames (one per output cell, then the finished output held for 3 s) as a looping GIF at `path`."""
    require_pillow("animate")
    p = Path(path)
    if p.suffix.lower() != ".gif":
        raise ValueError(f"animate: `path` must end in .gif, got {str(p)!r}")
    if not 0.2 <= fps <= 20:
        raise ValueError(f"animate: `fps` must be between 0.2 and 20 frames per second, got {fps}")
    frames = [render_frame(s, i) for i in range(1, len(s.steps) + 2)]
    durations = [round(1000 / fps)] * len(s.steps) + [3000]
    p.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=True)
    return p
