"""Loader facts on the real MNIST in /work/shared/data/mnist (skipped when that folder is absent)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from convolve.data import MNIST, DataLoader
from convolve.data.transforms import Compose, Normalize, Pad, ToTensor

REAL = Path("/work/shared/data/mnist")
SHA256 = {  # of the uncompressed content, from /work/shared/data/README.md
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} is absent")


@pytest.fixture(scope="module")
def train():
    return MNIST(REAL, train=True)


@pytest.mark.parametrize("name", sorted(SHA256))
def test_local_copies_match_the_original_content(name):
    with gzip.open(REAL / f"{name}.gz", "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == SHA256[name]


def test_train_facts(train):
    assert train.data.shape == (60000, 28, 28) and train.data.dtype == np.uint8
    assert train.targets[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(train.targets).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    counts = np.bincount(train.data.ravel(), minlength=256)  # pixel-value histogram: exact moments, cheaply
    values = np.arange(256) / 255.0
    mean = (counts * values).sum() / counts.sum()
    std = np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum())
    assert round(mean, 4) == 0.1307 and round(std, 4) == 0.3081


def test_test_facts():
    test = MNIST(REAL, train=False)
    assert test.data.shape == (10000, 28, 28)
    assert test.targets[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_loader_over_real_mnist(train):
    pipeline = Compose([ToTensor(), Pad(2), Normalize([0.1307], [0.3081])])  # LeNet-5's 32x32 input
    loader = DataLoader(train, batch_size=1000, transform=pipeline)
    total, sq, n = 0.0, 0.0, 0
    for x, _ in loader:
        assert x.shape[1:] == (1, 32, 32) and x.dtype == np.float32
        inner = x.data[:, :, 2:-2, 2:-2].astype(np.float64)
        total, sq, n = total + inner.sum(), sq + (inner**2).sum(), n + inner.size
    assert len(loader) == 60 and abs(total / n) < 1e-3 and abs(np.sqrt(sq / n) - 1) < 1e-3
