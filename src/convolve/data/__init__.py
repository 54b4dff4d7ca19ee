"""Datasets (MNIST, Fashion-MNIST, CIFAR-10/100, bundled Digits), checked downloads, a DataLoader, batch transforms.

Conventions: a dataset's `data` is uint8 (N, H, W) (grayscale) or (N, H, W, 3) (colour, HWC as torchvision),
`targets` int64, `pixel_max` the value meaning 1.0 (255; 16 for Digits). `root` is the folder holding the
dataset's ORIGINAL files; by default `$CONVOLVE_DATA/<name>` or `~/.cache/convolve/<name>`. Transforms work
on whole batches: ToTensor makes float32 (N, C, H, W) in [0, 1], the others take and return that.
The DataLoader yields (images float32 (N, C, H, W), labels int64 (N,)) Tensors for those datasets and batches
any other map-style dataset (a list of pairs, `TensorDataset`, your own class) with `default_collate`.
"""

from convolve.data import transforms
from convolve.data._prefetch import WorkerInfo, get_worker_info
from convolve.data.cifar import CIFAR10, CIFAR100
from convolve.data.collate import default_collate, default_convert
from convolve.data.dataset import (
    ArrayDataset,
    ConcatDataset,
    Dataset,
    Subset,
    TensorDataset,
    default_root,
    random_split,
)
from convolve.data.digits import Digits
from convolve.data.distributed_sampler import DistributedSampler
from convolve.data.download import DownloadError, check_md5, download_file
from convolve.data.iterable import IterableDataset
from convolve.data.loader import DataLoader
from convolve.data.mnist import MNIST, FashionMNIST
from convolve.data.registry import get_dataset, list_datasets
from convolve.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "MNIST",
    "ArrayDataset",
    "BatchSampler",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "Digits",
    "DistributedSampler",
    "DownloadError",
    "FashionMNIST",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "WorkerInfo",
    "check_md5",
    "default_collate",
    "default_convert",
    "default_root",
    "download_file",
    "get_dataset",
    "get_worker_info",
    "list_datasets",
    "random_split",
    "transforms",
]
