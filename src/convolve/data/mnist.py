"""MNIST and Fashion-MNIST, read from their four original IDX .gz files (torchvision's interface)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from convolve.data.dataset import ArrayDataset, Transform, missing_file_error, resolve_root
from convolve.data.download import download_file
from convolve.data.idx import read_idx

MAX_IMAGES = 100_000  # per file; the published ones hold 60,000 / 10,000 (a larger header is refused as hostile)


class MNIST(ArrayDataset):
    """The MNIST digits: 60,000 train / 10,000 test images, `data` uint8 (N, 28, 28), `targets` int64 0..9.

    `root` is the folder holding the original files (train-images-idx3-ubyte.gz, ...; uncompressed
    copies are accepted too); default `$CONVOLVE_DATA/mnist` or `~/.cache/convolve/mnist`.
    `download=True` fetches missing (or corrupt) files from `mirrors`, checked against the published MD5s.
    """

    name = "mnist"
    folder = "mnist"
    mirrors: Sequence[str] = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )
    resources: dict[str, str] = {  # published MD5s of the .gz files on the mirrors
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    classes_list = [
        f"{d} - {w}"
        for d, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    ]

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        train: bool = True,
        download: bool = False,
        transform: Transform | None = None,
        *,
        mirrors: Sequence[str] | None = None,
    ) -> None:
        self.root = resolve_root(root, self.folder)
        self.train = bool(train)
        self._mirrors = tuple(mirrors) if mirrors is not None else tuple(self.mirrors)
        prefix = "train" if self.train else "t10k"
        images = self._load(f"{prefix}-images-idx3-ubyte", 3, download, (28, 28))
        labels = self._load(f"{prefix}-labels-idx1-ubyte", 1, download, ())
        fn = type(self).__name__
        if images.shape[1:] != (28, 28):
            raise ValueError(f"{fn}: images must be 28x28, got shape {images.shape} in {self.root}")
        if len(images) != len(labels):
            raise ValueError(f"{fn}: {len(images)} images but {len(labels)} labels in {self.root}")
        if labels.size and labels.max() >= len(self.classes_list):
            raise ValueError(f"{fn}: labels must be in 0..{len(self.classes_list) - 1}, found {labels.max()}")
        super().__init__(images, labels, self.classes_list, transform, pixel_max=255)

    def _load(self, stem: str, ndim: int, download: bool, item_shape: tuple[int, ...]) -> np.ndarray:
        """Read `stem`.gz (or the uncompressed `stem`); with `download`, fetch it when absent or unreadable.

        Existing files are trusted when they parse (local re-compressed copies have other .gz MD5s than
        the mirrors); a file that fails to parse is re-fetched, and the download itself is MD5-checked.
        """
        fn = type(self).__name__
        gz_name = f"{stem}.gz"
        path = next((p for p in (self.root / gz_name, self.root / stem) if p.is_file()), None)
        if path is None and not download:
            raise missing_file_error(fn, self.root / gz_name, self.root)
        if path is not None:
            try:
                return np.asarray(read_idx(path, ndim, fn, item_shape, MAX_IMAGES))
            except ValueError:
                if not download:
                    raise
        path = download_file(gz_name, self.resources[gz_name], self.root, self._mirrors, max_bytes=64 << 20)
        return np.asarray(read_idx(path, ndim, fn, item_shape, MAX_IMAGES))


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: the same files and shapes as MNIST, 10 clothing classes."""

    name = "fashion-mnist"
    folder = "fashion-mnist"
    mirrors: Sequence[str] = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    resources: dict[str, str] = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    classes_list = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
