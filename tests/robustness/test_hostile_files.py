"""Hostile files (generated here, small on disk) against every reader, in a subprocess with a 640 MiB address-space
limit and a per-case alarm: each must fail fast with a clear message naming what is wrong, never expand a bomb."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.robustness import hostile

pytest.importorskip("resource", reason="the memory limit needs the POSIX resource module")
DRIVER = Path(__file__).with_name("hostile_driver.py")
LIMIT = 640 << 20
SECONDS = 20

EXPECTED = {  # case -> (exception type, words the message must hold)
    "cifar_shared_nested_labels": ("ValueError", ["test_batch", "holds a list", "flat"]),
    "cifar_deeply_nested_list": ("ValueError", ["test_batch", "holds a list", "flat"]),
    "cifar_tar_3gib_member": ("ValueError", ["readme.bin", "3,221,225,472 bytes", "not a CIFAR archive"]),
    "mnist_gz_bomb_after_valid_header": ("ValueError", ["t10k-images", "wrong size", "more data than that"]),
    "mnist_gz_bomb_bad_magic": ("ValueError", ["magic number must be 0x00000803"]),
    "mnist_header_declares_billions": ("ValueError", ["declares shape (1000000000, 28, 28)", "at most 100,000"]),
    "npz_member_bomb_small_index": ("ValueError", ["bomb_small_index.npz", "a0.npy", "zip bomb"]),
    "npz_member_bomb_matching_index": ("ValueError", ["bomb_matching_index.npz", "a0.npy", "zip bomb"]),
    "npz_member_larger_than_index": ("ValueError", ["index_lies.npz", "array 'a0' is |u1 [1048576]",
                                                     "the index says |u1 [3]"]),
    "png_20000x20000": ("ValueError", ["huge.png", "20000x20000 pixels"]),
    "png_idat_bomb": ("ValueError", ["idat_bomb.png", "PNG pixel data has 4161 bytes, expected 4160"]),
    "pgm_20000x20000": ("ValueError", ["huge.pgm", "20000x20000 pixels"]),
    "npy_header_declares_gigabytes": ("ValueError", ["huge.npy"]),
    "load_a_directory": ("IsADirectoryError", ["is a folder, not a checkpoint file"]),
    "npz_index_nested_200_deep": ("ValueError", ["deep200.npz", "nested too deeply (more than 100 levels)"]),
    "npz_index_nested_100000_deep": ("ValueError", ["deep100000.npz", "index is nested too deeply"]),
}


def write_hostile_files(root: Path) -> None:
    h = hostile
    h.cifar_folder(root / "cifar_shared", {b"data": np.zeros((2, 3072), np.uint8),
                                           b"labels": h.shared_nested_labels()})
    h.cifar_folder(root / "cifar_deep", h.deep_nested_pickle())
    (root / "cifar_tar").mkdir()
    h.tar_gz_with_big_member(root / "cifar_tar" / "cifar-10-python.tar.gz", 192)
    h.mnist_folder(root / "mnist_bomb", gzip.compress(h.idx_header((10, 28, 28))) + h.gzip_zeros(80))
    h.mnist_folder(root / "mnist_bad_magic", gzip.compress(b"\x00\x00\x09\x03") + h.gzip_zeros(80))
    h.mnist_folder(root / "mnist_huge", gzip.compress(h.idx_header((10**9, 28, 28))) + h.gzip_zeros(80))
    h.npz_member_bomb(root / "bomb_small_index.npz", 64, [3])
    h.npz_member_bomb(root / "bomb_matching_index.npz", 64, [64 * h.BLOCK])
    h.npz_index_lies(root / "index_lies.npz")
    (root / "huge.png").write_bytes(h.png(20000, 20000, h.deflate_zeros(64, 15)))
    (root / "idat_bomb.png").write_bytes(h.png(64, 64, h.deflate_zeros(64, 15)))
    (root / "huge.pgm").write_bytes(b"P5\n20000 20000\n255\n" + bytes(1000))
    h.npy_header_only(root / "huge.npy", (20000, 20000, 3))
    h.npz_deep_index(root / "deep200.npz", 200)
    h.npz_deep_index(root / "deep100000.npz", 100_000)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    write_hostile_files(root)
    sizes = {p.name: p.stat().st_size for p in root.rglob("*") if p.is_file()}
    assert max(sizes.values()) < 4 << 20, sizes  # small on disk
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(DRIVER), str(root), str(LIMIT), str(SECONDS)], capture_output=True,
                          text=True, env=env, timeout=len(EXPECTED) * SECONDS + 60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_hostile_file_fails_fast_with_a_clear_message(outcomes, case):
    kind, words = EXPECTED[case]
    got = outcomes[case]
    assert got["error"] == kind, got
    for word in words:
        assert word in got["message"], got


def test_every_driver_case_has_an_expectation(outcomes):
    assert set(outcomes) == set(EXPECTED)
