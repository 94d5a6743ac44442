"""An image data set read by a torchvision dataset class (MNIST, CIFAR-10), kept in memory.

The subclass names the class, its sizes and where its files go; loading, downloading, the
splits (``[train pool | val]``, ``train_size``, ``test_size``) and the error messages are shared.
"""

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from dlfoundations.data.base import InMemoryDataModule, Splits, first, split_pool
from dlfoundations.data.files import open_dataset
from dlfoundations.errors import UserError


class TorchvisionImages(InMemoryDataModule):
    """The training split is ``[train pool | val]`` (val: its last ``val_size`` images);
    ``train_size`` (or the shared ``subset_size``) keeps the first images of the pool,
    ``test_size`` the first test images."""

    dataset: ClassVar[Any]  # the torchvision class
    title: ClassVar[str]  # as the errors name it
    train_images: ClassVar[int]
    files: ClassVar[str]  # what the user puts where (for the error message)
    offline: ClassVar[str]  # what to run without the files

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = True,
        train_size: int | None = None,
        val_size: int = 0,
        test_size: int | None = None,
        normalize: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= val_size < self.train_images:
            raise UserError(f"data.val_size={val_size} is out of range; use 0..{self.train_images - 1}")
        self.data_dir, self.download = Path(data_dir), download
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.normalize = normalize

    def folder(self) -> Path:
        """Where the class reads its files."""
        raise NotImplementedError

    def missing_files(self) -> bool:
        raise NotImplementedError

    def images(self, ds: Any) -> Tensor:
        """The data set's images as float ``[N, C, H, W]`` in [0, 1] (normalized where asked)."""
        raise NotImplementedError

    def _open(self, train: bool, download: bool) -> Any:
        return open_dataset(
            lambda: self.dataset(str(self.data_dir), train=train, download=download),
            self.title,
            self.folder(),
            self.files,
            self.offline,
        )

    def files_to_write(self) -> list[Path]:
        return [self.folder()] if self.download and self.missing_files() else []

    def prepare_data(self) -> None:
        # Runs on one process only: download (if allowed and needed) before setup() reads.
        for train in (True, False):
            self._open(train, self.download)

    def load_splits(self) -> Splits:
        train, test = self._open(True, False), self._open(False, False)
        labels = torch.as_tensor(train.targets).long()
        parts = split_pool(self.images(train), labels, self.val_size, self.train_size)
        test_labels = torch.as_tensor(test.targets).long()
        return Splits(*parts, *first(self.images(test), test_labels, self.test_size, "test_size"))
