"""CIFAR-10 through torchvision's own ``CIFAR10`` class, in memory, augmented on whole batches."""

from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import CIFAR10

from dlfoundations.data.augment import random_crop_flip
from dlfoundations.data.base import InMemoryDataModule, Splits, split_pool
from dlfoundations.data.files import open_dataset
from dlfoundations.data.loader import BatchTransform
from dlfoundations.errors import UserError

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class CIFAR10DataModule(InMemoryDataModule):
    """CIFAR-10; val is the last ``val_size`` of the 50,000 training images. ``augment`` applies
    random crop (``crop_padding``) and horizontal flip to training batches on the device, inside
    the loader, with randomness drawn from (seed, epoch, rank, batch index) so a resumed run
    augments identically."""

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = True,
        subset_size: int | None = None,
        val_size: int = 0,
        normalize: bool = True,
        augment: bool = True,
        crop_padding: int = 4,
        flip: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= val_size < 50_000 or crop_padding < 0:
            raise UserError(f"need 0 <= data.val_size < 50000 and crop_padding >= 0, got {val_size}, {crop_padding}")
        self.data_dir, self.download = Path(data_dir), download
        self.subset_size, self.val_size, self.normalize = subset_size, val_size, normalize
        self.augment, self.crop_padding, self.flip = augment, crop_padding, flip

    def _open(self, train: bool, download: bool) -> CIFAR10:
        return open_dataset(
            lambda: CIFAR10(str(self.data_dir), train=train, download=download),
            "CIFAR-10",
            self.data_dir / "cifar-10-batches-py",
            "the python-version batches (data_batch_1 .. data_batch_5, test_batch, batches.meta; "
            "or cifar-10-python.tar.gz in the data dir)",
            "use a data config that needs no download (data=mnist_bundled, data=mnist1d)",
        )

    def prepare_data(self) -> None:
        for train in (True, False):
            self._open(train, self.download)

    def load_splits(self) -> Splits:
        train, test = self._open(True, False), self._open(False, False)
        parts = split_pool(self._images(train), torch.tensor(train.targets), self.val_size, self.subset_size)
        return Splits(*parts, self._images(test), torch.tensor(test.targets))

    def _images(self, ds: CIFAR10) -> Tensor:
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
        if self.normalize:
            x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        return x

    def train_transform(self) -> BatchTransform | None:
        if not self.augment:
            return None
        padding, flip = self.crop_padding, self.flip

        def augment(batch: tuple[Tensor, ...], generator: torch.Generator) -> tuple[Tensor, ...]:
            x, *rest = batch
            return (random_crop_flip(x, padding, flip, generator), *rest)

        return augment
