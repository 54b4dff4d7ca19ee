"""Smoke tests of the benchmark scripts (benchmarks/): they keep running as the library changes, their FLOP
counts are right, and the PyTorch twins bench_train.py times are layer for layer the zoo models."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import convolve as cv

pytest.importorskip("torch")
pytest.importorskip("threadpoolctl")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def scripts():  # the scripts as modules; bench_train imports torch_twins from the same folder
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield {name: importlib.import_module(name)
               for name in ("bench_ops", "bench_train", "gemm_floor", "profile_step")}
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_bench_ops_counts_alexnet_conv1_flops(scripts):
    case = next(c for c in scripts["bench_ops"].CASES if c.name.startswith("alexnet conv1"))
    assert case.output_hw() == (55, 55)  # 227x227, 11x11 stride 4, no padding (lecture fact)
    assert case.forward_flops() == 2 * 32 * 96 * 55 * 55 * (3 * 11 * 11)


@pytest.mark.parametrize("op", ["conv", "maxpool", "avgpool", "relu", "batchnorm"])
def test_bench_ops_times_a_tiny_case(scripts, op):
    case = scripts["bench_ops"].Case(f"tiny {op}", op, (2, 4, 8, 8), 4 if op == "conv" else 0, 3, 1, 1,
                                     groups=2 if op == "conv" else 1)
    result = scripts["bench_ops"].time_case(case, repeat=1)
    for key in ("cv_fwd", "torch_fwd", "cv_fwdbwd", "torch_fwdbwd", "ratio_fwd", "ratio_fwdbwd", "ref_fwdbwd",
                "ref_ratio_fwdbwd"):
        assert math.isfinite(result[key]) and result[key] > 0, (key, result[key])


@pytest.mark.parametrize("network", ["lenet5", "vgg_small", "resnet20"])
def test_bench_train_twins_load_into_the_zoo_models(scripts, network, tmp_path):
    # the convolve worker loads the PyTorch twin's state_dict into get_model(network): any layer difference fails
    bench = scripts["bench_train"]
    for framework in ("cv", "torch", "torch_cl"):
        result = bench.run_worker(framework, network, steps=1, threads=1, batch=2)
        assert result["median_s"] > 0 and result["rss_mb"] > 0 and result["first_s"] > 0
    bench.twin_weights(network, str(tmp_path / "twin.npz"))  # what the parent hands a convolve worker
    result = bench.run_worker("cv", network, steps=1, threads=1, batch=2, engine="numpy",
                              weights=str(tmp_path / "twin.npz"))
    assert result["median_s"] > 0


def test_bench_train_row_gives_the_ratio_and_the_spread_of_the_rounds(scripts):
    worker = {"cpu_s": 0.2, "rss_mb": 100.0, "first_s": 1.0}
    result = {"cv": {**worker, "median_s": 0.33}, "torch": {**worker, "median_s": 0.40},
              "torch_cl": {**worker, "median_s": 0.30},
              "rounds": {"torch": [0.8, 0.85], "torch_cl": [1.32, 0.91, 1.05]}}
    row = scripts["bench_train"].report_row("resnet20", 2, 128, result).split()
    assert row[5] == "1.10"  # 0.33 / 0.30: against the better layout (channels_last here)
    assert row[6] == "0.91-1.32"  # the lowest and highest round ratio against that layout


def test_bench_train_rounds_interleave_the_thread_counts(scripts, monkeypatch):
    """A round runs each framework at each thread count in turn; results come back per thread count, in order."""
    import argparse
    import json
    import subprocess

    bench, calls = scripts["bench_train"], []

    def fake_run(cmd, **_):
        framework, threads = cmd[cmd.index("--worker") + 1], int(cmd[cmd.index("--threads") + 1])
        calls.append((threads, framework))
        step = {"cv": 0.3, "torch": 0.4, "torch_cl": 0.5}[framework] / threads * (1 + len(calls) / 100)
        worker = {"median_s": step, "cpu_s": step, "rss_mb": 1.0, "first_s": 1.0}
        return subprocess.CompletedProcess(cmd, 0, stdout="log line\n" + json.dumps(worker) + "\n")

    monkeypatch.setattr(bench, "twin_weights", lambda name, path: None)
    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    args = argparse.Namespace(rounds=2, steps=1, batch=2, engine="fast")
    results = bench.measure("lenet5", [1, 2], args)
    one_round = [(t, fw) for t in (1, 2) for fw in bench.FRAMEWORKS]
    assert calls == one_round + one_round
    assert list(results) == [1, 2]
    assert results[1]["cv"]["median_s"] == pytest.approx(0.3 * (1 + (1 + 7) / 2 / 100))  # median of rounds 1, 2
    assert results[2]["rounds"]["torch"] == pytest.approx([0.3 / 0.4 * 1.04 / 1.05, 0.3 / 0.4 * 1.10 / 1.11])


def test_gemm_floor_layers_and_products_run(scripts):
    floor = scripts["gemm_floor"]
    assert {layer.name: layer.out_hw for layer in floor.LAYERS}["lenet c3 6x14x14->16 5x5"] == 10
    assert {layer.name: layer.out_hw for layer in floor.LAYERS}["resnet20 16x32x32->32 /2"] == 16
    floor._gemms("numpy", floor.Layer("tiny", 4, 8, 4))()


def test_profile_step_reports_the_serial_part(scripts, capsys):
    scripts["profile_step"].report_serial("tiny", 2, 1, lambda: sum(range(1000)))
    out = capsys.readouterr().out
    assert "serial" in out and "Amdahl at 8 cores" in out


def test_profile_step_reports_per_op_scaling(scripts, capsys):
    """The per-op scaling report times real ops at 1 and 2 threads and puts the whole step first."""
    profile_step = scripts["profile_step"]
    x = cv.tensor(np.random.default_rng(0).standard_normal((4, 3, 8, 8), dtype=np.float32), requires_grad=True)
    conv = cv.nn.Conv2d(3, 4, 3)
    profile_step.report_scaling("tiny", 2, 2, lambda: cv.nn.functional.relu(conv(x)).sum().backward())
    lines = capsys.readouterr().out.splitlines()
    assert "whole step" in lines[2]
    assert any(line.split()[:1] == ["forward"] and "Conv2d" in line for line in lines)
    assert any(line.split()[:1] == ["backward"] and "ReLU" in line for line in lines)
    with pytest.raises(ValueError, match="--threads"):
        profile_step.report_scaling("tiny", 1, 1, lambda: None)
