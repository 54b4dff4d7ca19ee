"""The bundled UCI optical handwritten digits: 1,797 images of 8x8, values 0..16 (no download needed).

Source: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine Learning
Repository (CC BY 4.0); the same 1,797 images scikit-learn ships (see DIGITS_LICENSE.txt). The fixed
held-out split is stored in the file itself (`test_mask`): a stratified 20% per class, drawn once with
`numpy.random.default_rng(20260101)`, giving 1,437 train / 360 test images (35-37 per class in test).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from convolve.data.dataset import ArrayDataset, Transform

DIGITS_FILE = "digits.npz"


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 1,797 (images uint8 (N, 8, 8) in 0..16, labels uint8 (N,), test_mask bool (N,)) from the package."""
    with resources.files("convolve.data").joinpath(DIGITS_FILE).open("rb") as f, np.load(f) as npz:
        return npz["images"], npz["labels"], npz["test_mask"]


class Digits(ArrayDataset):
    """The 8x8 digits, split 1,437 train / 360 test; `pixel_max` is 16 (so ToTensor(max_value=16) maps to [0, 1]).

    `root` and `download` are accepted for a uniform interface and ignored: the data ships with convolve.
    """

    name = "digits"
    classes_list = [str(d) for d in range(10)]

    def __init__(
        self,
        root: object = None,
        train: bool = True,
        download: bool = False,
        transform: Transform | None = None,
    ) -> None:
        images, labels, test_mask = load_digits_arrays()
        self.train = bool(train)
        keep = ~test_mask if self.train else test_mask
        super().__init__(images[keep], labels[keep].astype(np.int64), self.classes_list, transform, pixel_max=16)
