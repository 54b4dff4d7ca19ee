"""Crash consistency of a training run: the process kills itself at every write point of a 3-epoch run (not at
random), then resumes; last/best checkpoints and both histories must equal an uninterrupted run of the same seed
(bit-identical weights and optimizer state) and agree with each other, and no temporary file may remain."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convolve import _atomic
from convolve.train import BEST, LAST, History, load_checkpoint

DRIVER = Path(__file__).with_name("fault_driver.py")
WALL_CLOCK = ("time", "images_per_second")  # the only history fields that may differ between two runs


@pytest.fixture(scope="module")
def fault_runs(tmp_path_factory):
    if not hasattr(os, "fork"):
        pytest.skip("the fault driver forks one child per write point (POSIX only)")
    root = tmp_path_factory.mktemp("faults")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(DRIVER), str(root)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return root, json.loads(proc.stdout.strip().splitlines()[-1])


def _without_wall_clock(records):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in records]


def assert_same_tree(a, b, where="checkpoint"):
    """Equal nested state: arrays bit for bit, scalars exactly (NaN equals NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray) or hasattr(a, "data"):
        np.testing.assert_array_equal(np.asarray(getattr(a, "data", a)), np.asarray(getattr(b, "data", b)),
                                      err_msg=where)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_checkpoint(path, ref_path):
    model, extra = load_checkpoint(path)
    ref_model, ref_extra = load_checkpoint(ref_path)
    assert_same_tree(model, ref_model, f"{path.name} model")
    extra, ref_extra = dict(extra), dict(ref_extra)
    history, ref_history = extra.pop("history"), ref_extra.pop("history")
    assert _without_wall_clock(history) == _without_wall_clock(ref_history), path.name
    assert_same_tree(extra, ref_extra, f"{path.name} train state")
    return history


def assert_histories_match(folder, records):
    """history.json and history.csv hold exactly the records stored in last.npz."""
    assert History.load_json(folder / "history.json").records == records
    rows = list(csv.DictReader((folder / "history.csv").read_text().splitlines()))
    assert len(rows) == len(records)
    for row, record in zip(rows, records):
        assert {k: float(v) for k, v in row.items()} == {k: float(v) for k, v in record.items()}


def test_the_run_covers_both_best_cases(fault_runs):
    root, report = fault_runs
    _, extra = load_checkpoint(root / "ref" / LAST)
    assert extra["epoch"] == 3 and extra["best_epoch"] == 2  # a new best after epoch 1, then none
    labels = report["points"]
    assert len(labels) == 3 * 8 - 2 and {"last.npz", "best.npz", "history.csv", "history.json"} == {
        label.split(":")[0] for label in labels}


def test_kill_at_every_write_point_then_resume_is_exact(fault_runs):
    root, report = fault_runs
    ref = root / "ref"
    assert report["resumed"][0] is False and all(report["resumed"][1:])  # nothing committed before point 1
    for k, label in enumerate(report["points"]):
        folder = root / str(k)
        assert sorted(p.name for p in folder.iterdir()) == sorted([BEST, "history.csv", "history.json", LAST]), \
            f"point {k} ({label}): leftover files"
        records = assert_same_checkpoint(folder / LAST, ref / LAST)
        assert_same_checkpoint(folder / BEST, ref / BEST)
        assert_histories_match(folder, records)


def test_atomic_write_failure_keeps_the_old_file_and_names_the_target(tmp_path):
    target = tmp_path / "history.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), _atomic.atomic_open(target, "w") as f:
        f.write("half")
        raise RuntimeError("disk gone")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["history.json"]
    with pytest.raises(OSError, match=f"cannot write {tmp_path / 'nope' / 'x.csv'}"):
        _atomic.write_text(tmp_path / "nope" / "x.csv", "x")


def test_stale_temporary_files_are_removed(tmp_path):
    (tmp_path / ".tmp-last.npz-abc").write_bytes(b"\0" * 100)
    (tmp_path / "keep.txt").write_text("mine")
    assert [p.name for p in _atomic.remove_stale_temps(tmp_path)] == [".tmp-last.npz-abc"]
    assert os.listdir(tmp_path) == ["keep.txt"]
