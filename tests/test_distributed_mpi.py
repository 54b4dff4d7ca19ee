"""Data-parallel training on 2 real MPI ranks (`mpiexec -n 2`, one BLAS thread each) against one process.

The programs run by `mpiexec` are in tests/mpi_workers.py; each checks itself on every rank and exits non-zero on
a mismatch. Skipped, with the reason, when mpi4py or mpiexec is missing (`pip install convolve[distributed]`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from convolve.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ROOT / "tests" / "mpi_workers.py"


def _mpiexec() -> str | None:
    beside_python = Path(sys.executable).parent / "mpiexec"  # where the mpich wheel installs it
    return str(beside_python) if beside_python.is_file() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="needs mpi4py and mpiexec (pip install convolve[distributed]) to run 2 MPI ranks",
)


def _env() -> dict[str, str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    return env


def _run(args: list[str], ranks: int | None = 2, cwd: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`mpiexec -n ranks python -m mpi4py ARGS` (or plain `python ARGS` when ranks is None)."""
    launch = [sys.executable] if ranks is None else [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "mpi4py"]
    return subprocess.run([*launch, *args], capture_output=True, text=True, env=_env(), cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("name", ["ddp", "syncbn", "sampler", "collectives"])
def test_two_ranks_equal_one_process(name):
    # ddp: 22 optimizer steps (SGD-momentum, then AdamW) of a conv + SyncBatchNorm net in float64, the last on an
    # uneven 3 + 2 split, one with no_sync gradient accumulation: every parameter and buffer within 1e-12 of the
    # one-process run on the same global batches, and bitwise equal across the ranks.
    # syncbn: output, input/weight/bias gradients and running statistics equal BatchNorm2d on the whole batch.
    # sampler: DataLoader(sampler=DistributedSampler) shards are disjoint and cover the dataset.
    # collectives: all_reduce with every ReduceOp, broadcast from rank 1, all_gather, broadcast_object_list; DDP
    # with a parameter used on one rank only (its gradient reaches both) and one used nowhere (grad stays None).
    proc = _run([str(WORKERS), name])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"ok {name} world_size=2"), proc.stdout


def test_a_failing_rank_ends_the_job():
    proc = _run([str(WORKERS), "fail"], timeout=60)
    ended = time.time()
    assert proc.returncode != 0
    assert "rank 1 fails on purpose at step 3" in proc.stderr
    failed = float(re.search(r"failing at ([0-9.]+)", proc.stderr)[1])
    assert ended - failed < 10, f"the job took {ended - failed:.1f} s to end after rank 1 failed"


def test_ranks_wrapping_different_models_are_refused():
    proc = _run([str(WORKERS), "mismatch"], timeout=60)
    assert proc.returncode != 0
    message = "DistributedDataParallel: rank 1's module differs from rank 0's: ('weight', (3, 4), 'float32')"
    assert message in proc.stderr


def _accuracy(stdout: str) -> float:
    found = re.findall(r"^test accuracy: ([0-9.]+)$", stdout, re.M)
    assert len(found) == 1, f"expected one 'test accuracy' line (rank 0 only), got:\n{stdout}"
    return float(found[0])


def test_cli_trains_on_two_ranks(tmp_path):
    common = ["-m", "convolve", "train", "--epochs", "3", "--schedule", "none", "--no-progress"]
    single = _run([*common, "--out", "single"], ranks=None, cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    parallel = _run([*common, "--out", "two"], cwd=tmp_path)
    assert parallel.returncode == 0, parallel.stderr
    assert "2 processes of 32 images per batch" in parallel.stdout
    assert parallel.stdout.count("epoch 3:") == 1  # rank 0 alone prints
    assert _accuracy(parallel.stdout) >= _accuracy(single.stdout) - 0.02
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["best.npz", "history.csv", "history.json",
                                                                     "last.npz"]
    # the test accuracy summed over the ranks' shards is that of the checkpoint evaluated in one process
    alone = _run(["-m", "convolve", "evaluate", "two"], ranks=None, cwd=tmp_path)
    assert _accuracy(alone.stdout) == _accuracy(parallel.stdout), alone.stderr
    # --resume under MPI continues exactly: 1 epoch, then resumed to 3, equals 3 epochs in one go
    for extra in ([], ["--resume"]):
        args = [*common[:3], "--epochs", "1" if not extra else "3", *common[5:], "--out", "resumed", *extra]
        proc = _run(args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    whole, _ = load_checkpoint(tmp_path / "two" / "last.npz")
    resumed, _ = load_checkpoint(tmp_path / "resumed" / "last.npz")
    assert all(np.array_equal(whole[k], resumed[k]) for k in whole)


def test_cli_error_on_one_rank_stops_the_job(tmp_path):
    proc = _run(["-m", "convolve", "train", "--batch-size", "33", "--out", "x"], cwd=tmp_path, timeout=60)
    assert proc.returncode != 0
    assert "--batch-size (=33) is the global batch and must be divisible by the number of processes (=2)" in proc.stderr


def test_benchmark_script_runs():
    # the timing itself belongs on a quiet machine; this only checks that the script works end to end
    proc = _run([str(ROOT / "benchmarks" / "bench_distributed.py"), "--quick", "--only", "lenet5"], ranks=None,
                timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 ranks, 1 thread each" in proc.stdout and "Cost model on a 10 Gbit/s network" in proc.stdout
