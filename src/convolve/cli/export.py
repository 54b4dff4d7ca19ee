"""`convolve export RUN_OR_MODEL --out FILE`: a trained run (or a zoo model's fresh weights) as ONNX (`.onnx`)
or as safetensors weights (`.safetensors`), chosen by the output's extension."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from convolve import models
from convolve.autograd import no_grad
from convolve.tensor import Tensor


def add_export_parser(sub: argparse._SubParsersAction, positive_int: Any, parse_option: Any) -> None:
    p = sub.add_parser("export", help="write a run or zoo model as ONNX (.onnx) or safetensors (.safetensors)",
                       description="Export a checkpoint (a run folder or .npz written by `convolve train`) or a zoo "
                                   "model (random weights) to ONNX for onnxruntime/Netron, or its weights to "
                                   "safetensors for PyTorch and Hugging Face tools. The format follows --out.")
    p.add_argument("source", metavar="RUN_OR_MODEL", help="run folder, .npz checkpoint, or zoo model name")
    p.add_argument("--out", required=True, help="output file: NAME.onnx or NAME.safetensors")
    p.add_argument("--opset", type=positive_int, default=17, help="ONNX opset version (default 17)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch size to 1 (default: dynamic axis 0)")
    p.add_argument("--check", action="store_true",
                   help="run the exported ONNX model in onnxruntime on a random input and compare with convolve")
    p.add_argument("--input-size", type=positive_int, nargs=3, metavar=("C", "H", "W"), default=None,
                   help="input size (default: the run's, or the zoo model's native size)")
    p.add_argument("--num-classes", type=positive_int, default=None, help="zoo model only: number of outputs")
    p.add_argument("--option", action="append", type=parse_option, metavar="KEY=VALUE", help="zoo model option")


def _source_model(args: argparse.Namespace) -> tuple[Any, tuple[int, ...], dict[str, str]]:
    """(model in eval mode, input size (C, H, W), safetensors metadata) from a run or a zoo name."""
    if Path(args.source).exists():
        from convolve.train.model_files import load_model

        model, meta = load_model(args.source)
        size = tuple(meta["input_size"])
        info = {"model": str(meta["model"]), "dataset": str(meta.get("dataset", ""))}
    else:
        spec = models.model_spec(args.source)  # unknown name: the error lists the zoo
        model = models.get_model(args.source, num_classes=args.num_classes, **dict(args.option or []))
        size, info = spec.input_size, {"model": spec.name}
    return model.eval(), tuple(args.input_size or size), info


def _check(path: Path, model: Any, size: tuple[int, ...]) -> float:
    """Largest |onnxruntime - convolve| on a random batch of 2 (1 with a static batch), relative to the output."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = session.get_inputs()[0].shape[0]
    x = np.random.default_rng(0).standard_normal((batch if isinstance(batch, int) else 2, *size)).astype(np.float32)
    (got,) = session.run(None, {"input": x})
    with no_grad():
        ref = model(Tensor(x)).numpy()
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in (".onnx", ".safetensors"):
        raise ValueError(f"--out must end in .onnx or .safetensors, got {out.name!r}")
    model, size, info = _source_model(args)
    if out.suffix == ".safetensors":
        from convolve.safetensors_io import save_safetensors

        save_safetensors(model.state_dict(), out, metadata={"format": "pt", **info})
        print(f"wrote {out} ({len(model.state_dict())} tensors, {out.stat().st_size / 1e6:.1f} MB)", flush=True)
        return 0
    from convolve.onnx import export

    dynamic = None if args.static_batch else {"input": {0: "batch"}, "output": {0: "batch"}}
    export(model, Tensor(np.zeros((1, *size), dtype=np.float32)), out, opset_version=args.opset,
           input_names=["input"], output_names=["output"], dynamic_axes=dynamic)
    batch = "1" if args.static_batch else "N"
    print(f"wrote {out} (ONNX opset {args.opset}, {out.stat().st_size / 1e6:.1f} MB; input ({batch}, "
          f"{', '.join(map(str, size))}) float32)", flush=True)
    if args.check:
        print(f"onnxruntime matches convolve: max difference {_check(out, model, size):.1e} of the output scale",
              flush=True)
    return 0
