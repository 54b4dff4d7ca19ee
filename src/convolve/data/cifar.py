"""CIFAR-10 / CIFAR-100 from their original python-pickle batches, read with a restricted unpickler.

`root` may hold the original `cifar-10-python.tar.gz` (read in place, never extracted), its extracted
folder `cifar-10-batches-py/`, or be that folder itself (likewise cifar-100-python for CIFAR-100).
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve.data.dataset import ArrayDataset, Transform, missing_file_error, resolve_root
from convolve.data.download import download_file

# The only globals a CIFAR batch (a dict of bytes, lists and one ndarray) needs to rebuild itself.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol-5 pickles of arrays
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
}


class _SafeUnpickler(pickle.Unpickler):
    """An Unpickler that refuses every global except the few NumPy array constructors listed above."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"CIFAR: refusing to load global {module}.{name} from a data pickle")
        return super().find_class(module, name)


MAX_MEMBER_BYTES = 256 << 20  # a CIFAR-100 train batch is 155 MB; anything larger is not a CIFAR file
MAX_LIST_ITEMS = 1_000_000  # labels / filenames per batch (50,000 in the largest)
MAX_MEMBERS = 1_000  # tar members scanned (the real archives hold 8)


def safe_load_pickle(raw: bytes, where: str) -> dict[bytes, Any]:
    """Unpickle a CIFAR batch/meta dict (bytes keys, Python 2 latin-1 strings) without running arbitrary code.

    Besides refusing every global but NumPy's array constructors, the result must have CIFAR's flat structure (a
    dict of bytes, strings, numbers, arrays and flat lists of those): a small pickle whose lists share nested
    lists (gigabytes once expanded) is refused before anything expands it."""
    if len(raw) > MAX_MEMBER_BYTES:
        raise ValueError(f"CIFAR: {where} is {len(raw):,} bytes, more than any CIFAR file ({MAX_MEMBER_BYTES:,})")
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RecursionError, MemoryError) as exc:
        raise ValueError(f"CIFAR: {where} is not a valid CIFAR pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR: {where} must hold a dict, got {type(obj).__name__}")
    for key, value in obj.items():
        _check_flat(value, f"{where}[{key!r}]")
    return obj


_SCALARS = (bytes, str, int, float, type(None))


def _check_flat(value: Any, where: str) -> None:
    """A CIFAR value: a scalar, an ndarray, or a list of at most MAX_LIST_ITEMS scalars (no nesting)."""
    if isinstance(value, (*_SCALARS, np.ndarray)):
        return
    if not isinstance(value, list):
        raise ValueError(f"CIFAR: {where} has type {type(value).__name__}; a CIFAR pickle holds only bytes, "
                         f"numbers, arrays and flat lists")
    if len(value) > MAX_LIST_ITEMS:
        raise ValueError(f"CIFAR: {where} is a list of {len(value):,} items (at most {MAX_LIST_ITEMS:,} accepted)")
    bad = next((v for v in value if not isinstance(v, _SCALARS)), None)
    if bad is not None:
        raise ValueError(f"CIFAR: {where} holds a {type(bad).__name__}; CIFAR lists are flat (labels or names)")


class _FolderReader:
    """member name -> bytes (None when absent) for an extracted batches folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, name: str) -> bytes | None:
        path = self.folder / name
        if not path.is_file():
            return None
        size = path.stat().st_size
        if size > MAX_MEMBER_BYTES:
            raise ValueError(f"CIFAR: {path} is {size:,} bytes, more than any CIFAR file ({MAX_MEMBER_BYTES:,})")
        return path.read_bytes()


class CIFAR10(ArrayDataset):
    """CIFAR-10: 50,000 train / 10,000 test colour images; `data` uint8 (N, 32, 32, 3) (HWC, as torchvision)."""

    name = "cifar10"
    folder = "cifar10"
    mirrors: Sequence[str] = ("https://www.cs.toronto.edu/~kriz/",)
    archive = "cifar-10-python.tar.gz"
    archive_md5 = "c58f30108f718f92721af3b95e74349a"
    base_folder = "cifar-10-batches-py"
    train_files: tuple[str, ...] = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
    test_files: tuple[str, ...] = ("test_batch",)
    meta_file, meta_key, label_key = "batches.meta", b"label_names", b"labels"
    num_classes = 10
    default_classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

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
        reader = self._reader(download, tuple(mirrors) if mirrors is not None else tuple(self.mirrors))
        parts = [self._parse_batch(reader, name) for name in (self.train_files if self.train else self.test_files)]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        if all(p[2] is not None for p in parts):  # CIFAR-100's 20 superclasses
            self.coarse_targets = np.concatenate([np.asarray(p[2], dtype=np.int64) for p in parts])
        classes = self._classes(reader)
        super().__init__(images, labels, classes, transform, pixel_max=255)

    # ----- where the files are ---------------------------------------------------------------------
    def _reader(self, download: bool, mirrors: tuple[str, ...]) -> Callable[[str], bytes | None]:
        """A function member name -> bytes (None when absent), over the extracted folder or the archive."""
        for folder in (self.root / self.base_folder, self.root):
            if (folder / self.train_files[0]).is_file() or (folder / self.test_files[0]).is_file():
                return _FolderReader(folder)
        archive = self.root / self.archive
        if download:
            archive = download_file(self.archive, self.archive_md5, self.root, mirrors, max_bytes=512 << 20)
        if not archive.is_file():
            raise missing_file_error(type(self).__name__, archive, self.root)
        return self._archive_reader(archive)

    def _archive_reader(self, archive: Path) -> Callable[[str], bytes | None]:
        """Read the members `<base_folder>/<name>` this dataset needs straight from the tar.gz (no extraction, so no
        path tricks), checking each member's declared size before reading it; other members are skipped unread."""
        fn = type(self).__name__
        wanted = {f"{self.base_folder}/{n}" for n in (*self.train_files, *self.test_files, self.meta_file)}
        members: dict[str, bytes] = {}
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for count, m in enumerate(tar, 1):
                    if count > MAX_MEMBERS:
                        raise ValueError(f"{fn}: {archive} holds more than {MAX_MEMBERS} members; not a CIFAR archive")
                    if m.size > MAX_MEMBER_BYTES:  # refused before a byte of it is decompressed
                        raise ValueError(f"{fn}: {archive}: member {m.name} declares {m.size:,} bytes, more than any "
                                         f"CIFAR file ({MAX_MEMBER_BYTES:,}); not a CIFAR archive")
                    if m.name not in wanted or not m.isfile():
                        continue
                    members[m.name.split("/")[-1]] = tar.extractfile(m).read()  # type: ignore[union-attr]
                    if len(members) == len(wanted):
                        break  # everything needed is read: the rest of the archive is never decompressed
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise ValueError(
                f"{fn}: {archive} is not a valid tar.gz archive ({exc}); delete it and download it again"
            ) from exc
        return members.get

    # ----- parsing ---------------------------------------------------------------------------------
    def _parse_batch(self, reader: Callable[[str], bytes | None], name: str) -> tuple[np.ndarray, np.ndarray, Any]:
        """(images uint8 (n, 32, 32, 3), labels int64 (n,), coarse labels or None) of one batch, structure checked."""
        fn = type(self).__name__
        raw = reader(name)
        if raw is None:
            raise missing_file_error(fn, self.root / self.base_folder / name, self.root)
        batch = safe_load_pickle(raw, f"{self.base_folder}/{name}")
        data, labels = batch.get(b"data"), batch.get(self.label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise ValueError(f"{fn}: {name}: b'data' must be a uint8 array of shape (N, 3072), got {got}")
        labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
        if labels.shape != (len(data),):
            raise ValueError(f"{fn}: {name}: {len(data)} images but {labels.size} labels under {self.label_key!r}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"{fn}: {name}: labels must be in 0..{self.num_classes - 1}")
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()  # (n, 32, 32, 3)
        return images, labels, batch.get(b"coarse_labels")

    def _classes(self, reader: Callable[[str], bytes | None]) -> list[str]:
        """Class names from the meta file when present (else the published list)."""
        raw = reader(self.meta_file)
        if raw is None:
            return list(self.default_classes)
        names = safe_load_pickle(raw, f"{self.base_folder}/{self.meta_file}").get(self.meta_key)
        if not isinstance(names, list) or len(names) != self.num_classes:
            raise ValueError(f"{type(self).__name__}: {self.meta_file} must list {self.num_classes} class names")
        return [n.decode("latin-1") if isinstance(n, bytes) else str(n) for n in names]


class CIFAR100(CIFAR10):
    """CIFAR-100 with its 100 fine labels (`targets`); the 20 coarse labels are kept in `coarse_targets`."""

    name = "cifar100"
    folder = "cifar100"
    archive = "cifar-100-python.tar.gz"
    archive_md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    base_folder = "cifar-100-python"
    train_files = ("train",)
    test_files = ("test",)
    meta_file, meta_key, label_key = "meta", b"fine_label_names", b"fine_labels"
    num_classes = 100
    default_classes = (  # noqa: SIM905 (one readable string instead of 100 lines)
        "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel "
        "can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur "
        "dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion "
        "lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree "
        "pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea "
        "seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table "
        "tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman "
        "worm"
    ).split()
