"""`write_report`: one self-contained HTML page about a trained model (every picture embedded, nothing fetched).

Sections: accuracy, the training recipe, the layer table of `inspect.summary`, training curves, the confusion
matrix on the test loader, the first layer's filters, and for a few test images their feature maps, saliency and
Grad-CAM, plus the receptive field of one unit of the last convolution. The pictures are the `plot_*` figures of
`convolve.viz` (matplotlib), written as PNG data URIs; the page has no script and no external reference.
`write_run_report(run, path)` does it for a run folder of `convolve train`.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve import nn
from convolve.inspect import summary
from convolve.inspect.table import human_bytes, human_count
from convolve.train import evaluate
from convolve.viz._figure import display_image, require_matplotlib
from convolve.viz._layers import conv_layer_names, last_spatial_conv

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1d1d1f; margin: 24px auto; max-width: 1100px; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 12px; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f4f4f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; } .muted { color: #666; } .kpi { font-size: 20px; font-weight: 600; }
.row { display: flex; flex-wrap: wrap; gap: 12px 32px; align-items: flex-start; }
"""


def figure_data_uri(fig: Any, dpi: int) -> str:
    """A matplotlib Figure as a base64 PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: set[int]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{html.escape(str(v))}</td>' if i in numeric
                                    else f"<td>{html.escape(str(v))}</td>" for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary_section(model: nn.Module, input_size: tuple[int, ...]) -> str:
    s = summary(model, input_size)
    rows = []
    for r in s.rows:
        field = "?" if r.receptive_field is None else "x".join(f"{f.size:g}" for f in r.receptive_field)
        rows.append((r.name, r.type, "x".join(map(str, r.output_shape[1:])), f"{r.params:,}",
                     f"{r.unshared_params:,}", f"{r.macs:,}", field))
    table = _table(("layer", "type", "output", "params", "without sharing", "MACs", "receptive field"), rows,
                   {3, 4, 5})
    totals = (f"{s.total_params:,} parameters ({human_bytes(s.param_bytes)}), {human_count(s.total_macs)}MACs "
              f"= {human_count(s.total_flops)}FLOPs per image, input {'x'.join(map(str, input_size))}")
    return f"<h2>Model: {html.escape(s.model)}</h2><p>{totals}</p>{table}"


def _recipe_section(recipe: dict[str, Any] | None) -> str:
    if not recipe:
        return ""
    rows = [(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in sorted(recipe.items())]
    return "<h2>Recipe</h2>" + _table(("setting", "value"), rows, set())


def _first_batch(loader: Iterable[Any], count: int) -> tuple[np.ndarray, np.ndarray]:
    for x, y in loader:
        xs = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
        ys = np.asarray(y.numpy() if hasattr(y, "numpy") else y)
        return xs[:count], ys[:count]
    raise ValueError("report: `test_loader` yielded no batch")


def _shown(x: np.ndarray, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    """(C, H, W) normalized input back on [0, 1] for display (min/max scaled without mean/std)."""
    if mean is None or std is None:
        return display_image(x)
    m, s = np.asarray(mean).reshape(-1, 1, 1), np.asarray(std).reshape(-1, 1, 1)
    return np.clip(x * s + m, 0.0, 1.0)


def _image_section(model: nn.Module, x: np.ndarray, label: int, index: int, classes: Sequence[str] | None,
                   picture: np.ndarray, dpi: int) -> str:
    from convolve import viz

    name = classes[label] if classes is not None and 0 <= label < len(classes) else str(label)
    batch = x[None]
    features = viz.plot_feature_maps(model, batch, None, max_channels=8, image=picture)
    sal = viz.plot_saliency(model, batch, image=picture, classes=classes)
    cam_layer = last_spatial_conv("report", model, batch, activation=True)
    cam = viz.plot_grad_cam(model, batch, cam_layer, image=picture, classes=classes)
    parts = [_img(figure_data_uri(f, dpi), alt) for f, alt in
             ((sal, "saliency"), (cam, f"Grad-CAM at {cam_layer}"), (features, "feature maps"))]
    return f"<h3>Test image {index} (label {html.escape(name)})</h3><div class=\"row\">{''.join(parts)}</div>"


def _receptive_section(model: nn.Module, x: np.ndarray, picture: np.ndarray, dpi: int) -> str:
    from convolve import viz

    batch = x[None]
    layer = last_spatial_conv("report", model, batch)
    maps = viz.feature_maps(model, batch, [layer])[layer]  # (C, H, W)
    y, xx = maps.shape[1] // 2, maps.shape[2] // 2
    fig = viz.plot_receptive_field(model, batch, layer, 0, y, xx, image=picture)
    return (f"<h2>Receptive field</h2><p>Unit (0, {y}, {xx}) of {html.escape(layer)}: the rectangle is the "
            f"field from the layer arithmetic, the colours the input pixels its gradient reaches.</p>"
            + _img(figure_data_uri(fig, dpi), "receptive field"))


def build_report(model: nn.Module, test_loader: Iterable[Any], *, history: Any = None,
                 classes: Sequence[str] | None = None, recipe: dict[str, Any] | None = None,
                 title: str = "convolve report", mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, num_images: int = 3, dpi: int = 80) -> str:
    """The report page as an HTML string; `test_loader` yields normalized (x, y) batches; `mean`/`std` undo the
    normalization for display; `history` is a run folder, history file, `History` or dict (curves)."""
    from convolve import viz

    require_matplotlib("report")
    if not isinstance(model, nn.Module):
        raise TypeError(f"report: `model` must be a convolve.nn.Module, got {type(model).__name__}")
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"report: `num_images` must be a positive int, got {num_images!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi < 20:
        raise ValueError(f"report: `dpi` must be an int >= 20, got {dpi!r}")
    result = evaluate(model, test_loader)
    xs, ys = _first_batch(test_loader, num_images)
    pictures = [_shown(x, mean, std) for x in xs]
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p><span class="kpi">test accuracy {result.accuracy:.4f}</span> <span class="muted">on '
             f"{result.num_samples:,} images, loss {result.loss:.4f}, top-5 {result.top5:.4f}</span></p>",
             f'<div class="row"><div>{_summary_section(model, tuple(xs.shape[1:]))}</div>'
             f"<div>{_recipe_section(recipe)}</div></div>"]
    if history is not None:
        parts.append("<h2>Training curves</h2>" + _img(figure_data_uri(viz.plot_training_curves(history), dpi),
                                                       "training curves"))
    cm = viz.plot_confusion_matrix(result.confusion_matrix, classes)
    parts.append("<h2>Confusion matrix</h2>" + _img(figure_data_uri(cm, dpi), "confusion matrix"))
    convs = conv_layer_names(model)
    if convs:
        filt = viz.plot_filters(model, convs[0])
        parts.append(f"<h2>First-layer filters ({html.escape(convs[0])})</h2>" + _img(figure_data_uri(filt, dpi),
                                                                                       "filters"))
    parts.append("<h2>What the model looks at</h2>")
    parts += [_image_section(model, x, int(y), i, classes, p, dpi) for i, (x, y, p) in
              enumerate(zip(xs, ys, pictures))]
    parts.append(_receptive_section(model, xs[0], pictures[0], dpi))
    body = "\n".join(p for p in parts if p)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<link rel="icon" href="data:,"><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n')


def write_run_report(run: str | Path, path: str | Path, *, data_dir: str | None = None, num_images: int = 3,
                     dpi: int = 80) -> Path:
    """The report of a `convolve train` run (its folder or checkpoint): the model rebuilt from the checkpoint, the
    test split of its dataset read and normalized as in training, its history and recipe."""
    from convolve import data
    from convolve.train.model_files import load_model
    from convolve.train.recipe import eval_transform

    model, meta = load_model(str(run))
    run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    root = data_dir or (meta.get("recipe") or {}).get("data_dir")
    test_set = data.get_dataset(meta["dataset"], root=root, train=False)
    loader = data.DataLoader(test_set, batch_size=256, transform=eval_transform(meta))
    history = run_dir / "history.json"
    return write_report(path, model, loader, history=history if history.is_file() else None,
                        classes=meta.get("classes"), recipe=meta.get("recipe"),
                        title=f"{meta['model']} on {meta['dataset']}", mean=meta["mean"], std=meta["std"],
                        num_images=num_images, dpi=dpi)


def write_report(path: str | Path, model: nn.Module, test_loader: Iterable[Any], **options: Any) -> Path:
    """Write `build_report(model, test_loader, **options)` to `path` (.html, parent folders created)."""
    p = Path(path)
    if p.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"report: `path` must end in .html, got {str(p)!r}")
    text = build_report(model, test_loader, **options)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p
