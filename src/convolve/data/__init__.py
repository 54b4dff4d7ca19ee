"""Datasets (MNIST, Fashion-MNIST, CIFAR-10/100, bundled Digits), checked downloads, a DataLoader, batch transforms.

Conventions: a dataset's `data` is uint8 (N, H, W) (grayscale) or (N, H, W, 3) (colour, HWC as torchvision),
`targets` int64, `pixel_max` the value meaning 1.0 (255; 16 for Digits). `root` is the folder holding the
dataset's ORIGINAL files; by default `$CONVOLVE_DATA/<name>` or `~/.cache/convolve/<name>`. Transforms work
on whole batches: ToTensor makes float32 (N, C, H, W) in [0, 1], the others take and return that.
The DataLoader yields (images float32 (N, C, H, W), labels int64 (N,)) Tensors.
"""

from convolve.data import transforms
from convolve.data.cifar import CIFAR10, CIFAR100
from convolve.data.dataset import ArrayDataset, Subset, default_root, random_split
from convolve.data.digits import Digits
from convolve.data.distributed_sampler import DistributedSampler
from convolve.data.download import DownloadError, check_md5, download_file
from convolve.data.loader import DataLoader
from convolve.data.mnist import MNIST, FashionMNIST
from convolve.data.registry import get_dataset, list_datasets

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "MNIST",
    "ArrayDataset",
    "DataLoader",
    "Digits",
    "DistributedSampler",
    "DownloadError",
    "FashionMNIST",
    "Subset",
    "check_md5",
    "default_root",
    "download_file",
    "get_dataset",
    "list_datasets",
    "random_split",
    "transforms",
]
