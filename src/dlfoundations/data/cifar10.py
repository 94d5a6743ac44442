"""CIFAR-10 through torchvision's own ``CIFAR10`` class, in memory, augmented on whole batches."""

from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import CIFAR10

from dlfoundations.data.augment import random_crop_flip
from dlfoundations.data.base import InMemoryDataModule, Splits, split_pool
from dlfoundations.data.files import open_dataset
from dlfoundations.data.loader import BatchGroup
from dlfoundations.errors import UserError

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
_AUGMENT_STREAM = 3


class CIFAR10DataModule(InMemoryDataModule):
    """CIFAR-10; val is the last ``val_size`` of the 50,000 training images. ``augment`` applies
    random crop (``crop_padding``) and horizontal flip to training batches on the device, with
    randomness drawn from (seed, rank, global step) so a resumed run augments identically."""

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

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = self.trainer
        # Lightning also passes the model summary's example input (a bare tensor) through here.
        if not self.augment or trainer is None or not trainer.training or not isinstance(batch, (tuple, BatchGroup)):
            return batch
        step = trainer.global_step
        if isinstance(batch, BatchGroup):  # steps_per_call > 1: batches of optimizer steps step, step+1, ...
            return BatchGroup(self._augment(b, step + i) for i, b in enumerate(batch))
        return self._augment(batch, step)

    def _augment(self, batch: tuple[Tensor, Tensor], step: int) -> tuple[Tensor, Tensor]:
        x, y = batch
        trainer = self.trainer
        stream = step * max(1, trainer.world_size) + trainer.global_rank
        generator = torch.Generator(device=x.device)
        generator.manual_seed((self.seed * 1_000_003 + _AUGMENT_STREAM) * 1_000_003 + stream)
        return random_crop_flip(x, self.crop_padding, self.flip, generator), y
