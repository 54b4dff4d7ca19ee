"""Dataset readers on small files written here in the ORIGINAL formats (IDX .gz, CIFAR pickles/tar.gz).

The writers below are also used by the download and loader tests.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

import convolve as cv
from convolve.data import CIFAR10, CIFAR100, MNIST, ArrayDataset, Digits, FashionMNIST, get_dataset, list_datasets
from convolve.data.cifar import safe_load_pickle
from convolve.data.dataset import default_root
from convolve.data.digits import load_digits_arrays
from convolve.data.idx import write_idx

MNIST_FILES = {
    True: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    False: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def make_mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    return r.integers(0, 256, (n, 28, 28), dtype=np.uint8), r.integers(0, 10, n).astype(np.uint8)


def write_mnist(root: Path, n_train: int = 12, n_test: int = 7) -> dict[bool, tuple[np.ndarray, np.ndarray]]:
    """The four IDX .gz files of a tiny MNIST in `root`; returns {train: (images, labels)}."""
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for train, n in ((True, n_train), (False, n_test)):
        images, labels = make_mnist_arrays(n, seed=n)
        write_idx(root / MNIST_FILES[train][0], images)
        write_idx(root / MNIST_FILES[train][1], labels)
        out[train] = (images, labels)
    return out


def cifar_batch(n: int, seed: int, classes: int = 10, fine: bool = False) -> dict[bytes, object]:
    """A CIFAR batch dict as in the original pickles: b'data' (n, 3072) uint8 (channel-major), labels list."""
    r = np.random.default_rng(seed)
    batch: dict[bytes, object] = {b"data": r.integers(0, 256, (n, 3072), dtype=np.uint8)}
    labels = r.integers(0, classes, n).tolist()
    if fine:
        batch[b"fine_labels"] = labels
        batch[b"coarse_labels"] = [label // 5 for label in labels]
    else:
        batch[b"labels"] = labels
    batch[b"batch_label"] = b"testing batch"
    return batch


def cifar10_members(n: int = 4) -> dict[str, bytes]:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    members = {name: pickle.dumps(cifar_batch(n, seed=i), protocol=2) for i, name in enumerate(names)}
    meta = {b"label_names": [c.encode() for c in CIFAR10.default_classes], b"num_vis": 3072}
    members["batches.meta"] = pickle.dumps(meta, protocol=2)
    return members


def write_tar_gz(path: Path, folder: str, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def write_folder(folder: Path, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in members.items():
        (folder / name).write_bytes(raw)
    return folder


def expected_cifar_images(batches: list[dict[bytes, object]]) -> np.ndarray:
    data = np.concatenate([b[b"data"] for b in batches])  # type: ignore[misc]
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


# ----- MNIST / Fashion-MNIST --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
@pytest.mark.parametrize("train", [True, False])
def test_idx_files_are_read_exactly(tmp_path, cls, train):
    written = write_mnist(tmp_path)
    ds = cls(tmp_path, train=train)
    images, labels = written[train]
    np.testing.assert_array_equal(ds.data, images)
    np.testing.assert_array_equal(ds.targets, labels)
    assert ds.data.dtype == np.uint8 and ds.targets.dtype == np.int64
    assert len(ds) == len(images) and len(ds.classes) == 10
    image, label = ds[3]  # a (1, H, W) float Tensor in [0, 1], as torchvision with ToTensor()
    assert isinstance(image, cv.Tensor) and image.shape == (1, *images.shape[1:])
    np.testing.assert_allclose(image.numpy()[0], images[3] / 255, rtol=1e-6)
    assert label == labels[3] and isinstance(label, int)


def test_uncompressed_idx_files_are_accepted(tmp_path):
    images, labels = make_mnist_arrays(5, 0)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    np.testing.assert_array_equal(MNIST(tmp_path, train=False).data, images)


def test_missing_folder_names_the_path_and_the_remedies(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz not found.*download=True.*--data-dir"):
        MNIST(tmp_path / "nowhere")


def test_bad_magic_number_is_reported(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((12, 2), np.uint8))  # a 2-D file: magic 0x802
    with pytest.raises(ValueError, match=r"magic number must be 0x00000801, got 0x00000802"):
        MNIST(tmp_path)


def test_wrong_size_is_reported(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(ValueError, match=r"wrong size: header says shape \(12, 28, 28\)"):
        MNIST(tmp_path)


def test_corrupt_gzip_is_reported(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])  # truncated gzip stream
    with pytest.raises(ValueError, match=r"not a valid gzip file.*download"):
        MNIST(tmp_path)
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(ValueError, match=r"not a valid gzip file"):
        MNIST(tmp_path)


def test_image_and_label_counts_must_agree(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(ValueError, match=r"12 images but 11 labels"):
        MNIST(tmp_path)


def test_default_root_follows_convolve_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVOLVE_DATA", str(tmp_path))
    assert default_root("mnist") == tmp_path / "mnist"
    write_mnist(tmp_path / "mnist")
    assert len(MNIST(train=False)) == 7
    monkeypatch.delenv("CONVOLVE_DATA")
    assert default_root("cifar10") == Path.home() / ".cache" / "convolve" / "cifar10"


# ----- CIFAR -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["archive", "extracted", "folder-itself"])
def test_cifar10_reads_archive_or_extracted_folder(tmp_path, layout):
    members = cifar10_members(n=4)
    if layout == "archive":
        root = tmp_path
        write_tar_gz(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", members)
    elif layout == "extracted":
        root = tmp_path
        write_folder(tmp_path / "cifar-10-batches-py", members)
    else:
        root = write_folder(tmp_path / "cifar-10-batches-py", members)
    train, test = CIFAR10(root, train=True), CIFAR10(root, train=False)
    batches = [pickle.loads(members[f"data_batch_{i}"]) for i in range(1, 6)]
    np.testing.assert_array_equal(train.data, expected_cifar_images(batches))
    np.testing.assert_array_equal(train.targets, np.concatenate([b[b"labels"] for b in batches]))
    assert train.data.shape == (20, 32, 32, 3) and test.data.shape == (4, 32, 32, 3)
    assert train.classes == CIFAR10.default_classes and train.targets.dtype == np.int64
    # one pixel by hand: channel-major rows of 1024 values, row-major within a channel
    raw = batches[0][b"data"][1]
    assert train.data[1, 2, 5, 1] == raw[1 * 1024 + 2 * 32 + 5]


def test_cifar100_fine_and_coarse_labels(tmp_path):
    train, test = cifar_batch(6, 1, classes=100, fine=True), cifar_batch(3, 2, classes=100, fine=True)
    meta = {b"fine_label_names": [c.encode() for c in CIFAR100.default_classes], b"coarse_label_names": []}
    members = {name: pickle.dumps(b, protocol=2) for name, b in (("train", train), ("test", test), ("meta", meta))}
    write_tar_gz(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", members)
    ds = CIFAR100(tmp_path)
    np.testing.assert_array_equal(ds.targets, train[b"fine_labels"])
    np.testing.assert_array_equal(ds.coarse_targets, train[b"coarse_labels"])
    assert len(ds.classes) == 100 and ds.classes[0] == "apple"
    assert len(CIFAR100(tmp_path, train=False)) == 3


def test_cifar_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-python\.tar\.gz not found.*download=True"):
        CIFAR10(tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"not a valid tar\.gz archive"):
        CIFAR10(tmp_path)
    members = cifar10_members()
    del members["data_batch_3"]
    write_folder(tmp_path / "cifar-10-batches-py", members)
    with pytest.raises(FileNotFoundError, match=r"data_batch_3 not found"):
        CIFAR10(tmp_path)


def test_cifar_batch_structure_is_checked(tmp_path):
    members = cifar10_members()
    bad = cifar_batch(4, 0)
    bad[b"data"] = np.zeros((4, 100), np.uint8)
    members["test_batch"] = pickle.dumps(bad, protocol=2)
    write_folder(tmp_path / "cifar-10-batches-py", members)
    with pytest.raises(ValueError, match=r"b'data' must be a uint8 array of shape \(N, 3072\), got uint8 \(4, 100\)"):
        CIFAR10(tmp_path, train=False)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unpickler_refuses_arbitrary_globals(tmp_path):
    evil = pickle.dumps({b"data": _Evil()}, protocol=2)
    with pytest.raises(ValueError, match=r"refusing to load global (__builtin__|builtins)\.print"):
        safe_load_pickle(evil, "x")
    members = cifar10_members()
    members["test_batch"] = evil
    write_folder(tmp_path / "cifar-10-batches-py", members)
    with pytest.raises(ValueError, match=r"refusing"):
        CIFAR10(tmp_path, train=False)
    # what the real batches need still loads, in every pickle protocol
    for protocol in (2, 4, 5):
        out = safe_load_pickle(pickle.dumps(cifar_batch(2, 0), protocol=protocol), "ok")
        assert out[b"data"].shape == (2, 3072)


# ----- Digits, registry, base class --------------------------------------------------------------------


def test_digits_bundled_facts():
    train, test = Digits(train=True), Digits(train=False)
    assert (len(train), len(test)) == (1437, 360)
    images = np.concatenate([train.data, test.data])
    labels = np.concatenate([train.targets, test.targets])
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 16
    np.testing.assert_array_equal(np.bincount(labels), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    np.testing.assert_array_equal(np.bincount(test.targets), [36, 37, 35, 37, 36, 36, 36, 36, 35, 36])  # stratified
    assert train.pixel_max == 16 and train.classes == [str(d) for d in range(10)]
    all_images, all_labels, test_mask = load_digits_arrays()  # in the UCI / scikit-learn file order
    assert all_labels[0] == 0 and all_images[0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]
    np.testing.assert_array_equal(all_images[~test_mask], train.data)
    np.testing.assert_array_equal(all_labels[test_mask], test.targets)


def test_registry():
    assert list_datasets() == ["cifar10", "cifar100", "digits", "fashion-mnist", "mnist"]
    assert len(get_dataset("digits", train=False)) == 360
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'; valid names are cifar10, cifar100, digits"):
        get_dataset("imagenet")


def test_registry_builds_file_datasets(tmp_path):
    write_mnist(tmp_path)
    assert isinstance(get_dataset("Fashion_MNIST", root=tmp_path, train=False), FashionMNIST)


def test_array_dataset_checks_its_inputs():
    with pytest.raises(ValueError, match=r"`targets` must be 1-D with one label per image \(3\)"):
        ArrayDataset(np.zeros((3, 4, 4), np.uint8), [0, 1])
    with pytest.raises(ValueError, match=r"`data` must be 3-D"):
        ArrayDataset(np.zeros((3, 4), np.uint8), [0, 1, 2])
    ds = ArrayDataset(np.zeros((3, 4, 4), np.uint8), [0, 1, 2])
    with pytest.raises(IndexError, match=r"index 3 out of range for 3 items"):
        ds[3]


def test_mnist_images_must_be_28x28(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((7, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"MNIST: images must be 28x28, got shape \(7, 8, 8\)"):
        MNIST(tmp_path, train=False)
