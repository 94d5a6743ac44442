"""CIFAR-10 through torchvision's own ``CIFAR10`` class, in memory, augmented on whole batches."""

from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import CIFAR10

from dlfoundations.data.base import InMemoryDataModule, Splits, first, split_pool
from dlfoundations.data.files import open_dataset
from dlfoundations.errors import UserError

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class CIFAR10DataModule(InMemoryDataModule):
    """CIFAR-10; val is the last ``val_size`` of the 50,000 training images, ``train_size`` (or the
    shared ``subset_size``) keeps the first of the others, ``test_size`` the first test images.
    Augmented (crop and flip, the base class's ``augment``) unless ``augment=false``."""

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = True,
        train_size: int | None = None,
        val_size: int = 0,
        test_size: int | None = None,
        normalize: bool = True,
        augment: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(augment=augment, **kwargs)
        if not 0 <= val_size < 50_000:
            raise UserError(f"data.val_size={val_size} is out of range; use 0..49999")
        self.data_dir, self.download = Path(data_dir), download
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.normalize = normalize

    def _open(self, train: bool, download: bool) -> CIFAR10:
        return open_dataset(
            lambda: CIFAR10(str(self.data_dir), train=train, download=download),
            "CIFAR-10",
            self.data_dir / "cifar-10-batches-py",
            "the python-version batches (data_batch_1 .. data_batch_5, test_batch, batches.meta; "
            "or cifar-10-python.tar.gz in the data dir)",
            "use a data config that needs no download (data=mnist_bundled, data=mnist1d)",
        )

    def files_to_write(self) -> list[Path]:
        folder = self.data_dir / CIFAR10.base_folder
        missing = any(not (folder / name).is_file() for name, _ in CIFAR10.train_list + CIFAR10.test_list)
        return [self.data_dir] if self.download and missing else []

    def prepare_data(self) -> None:
        for train in (True, False):
            self._open(train, self.download)

    def load_splits(self) -> Splits:
        train, test = self._open(True, False), self._open(False, False)
        parts = split_pool(self._images(train), torch.tensor(train.targets), self.val_size, self.train_size)
        return Splits(*parts, *first(self._images(test), torch.tensor(test.targets), self.test_size, "test_size"))

    def _images(self, ds: CIFAR10) -> Tensor:
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
        if self.normalize:
            x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        return x
