"""CIFAR-10 through torchvision's own ``CIFAR10`` class, in memory, augmented on whole batches."""

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.datasets import CIFAR10

from dlfoundations.data.torchvision_images import TorchvisionImages

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class CIFAR10DataModule(TorchvisionImages):
    """CIFAR-10: ``[train pool | val]`` of the 50,000 training images. Normalized per channel unless
    ``normalize=false``; augmented (crop and flip, the base class's ``augment``) unless ``augment=false``."""

    dataset = CIFAR10
    title = "CIFAR-10"
    train_images = 50_000
    files = (
        "the python-version batches (data_batch_1 .. data_batch_5, test_batch, batches.meta; "
        "or cifar-10-python.tar.gz in the data dir)"
    )
    offline = "use a data config that needs no download (data=mnist_bundled, data=mnist1d)"

    def __init__(self, val_size: int = 0, normalize: bool = True, augment: bool = True, **kwargs: Any) -> None:
        super().__init__(val_size=val_size, normalize=normalize, augment=augment, **kwargs)

    def folder(self) -> Path:
        return self.data_dir / CIFAR10.base_folder

    def missing_files(self) -> bool:
        return any(not (self.folder() / name).is_file() for name, _ in CIFAR10.train_list + CIFAR10.test_list)

    def files_to_write(self) -> list[Path]:
        # torchvision downloads the archive into the data dir and unpacks it there.
        return [self.data_dir] if self.download and self.missing_files() else []

    def images(self, ds: CIFAR10) -> Tensor:
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
        if self.normalize:
            x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        return x
