"""Random images with random labels, of any shape: throughput benchmarks and smoke runs of the
CIFAR-scale models where the data set cannot be had. Nothing here can be learned beyond memorizing."""

import torch

from dlfoundations.data.base import InMemoryDataModule, Splits
from dlfoundations.errors import UserError
from dlfoundations.seeding import DATA, generator


class RandomImagesDataModule(InMemoryDataModule):
    """``train_size`` / ``val_size`` / ``test_size`` images of ``input_shape``, pixels N(0, 1), labels
    uniform over ``num_classes``; drawn from ``dataset_seed`` (the same images for every run seed).
    ``train_size=None`` draws as many training images as ``subset_size`` asks for (5,000 when that is
    None too), so an experiment's own subset size runs on random images unchanged."""

    def __init__(
        self,
        train_size: int | None = None,
        val_size: int = 0,
        test_size: int = 1000,
        dataset_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if train_size is None:
            train_size = self.subset_size or 5000
        if min(train_size, test_size) < 1 or val_size < 0:
            raise UserError("data.train_size and data.test_size must be >= 1, data.val_size >= 0")
        if self.declared_shape is None:
            raise UserError("data.input_shape must be set for random images, e.g. [3, 32, 32]")
        self.sizes, self.dataset_seed = (train_size, val_size, test_size), dataset_seed

    def load_splits(self) -> Splits:
        return Splits(*self.draw(0, self.sizes[0]), *self.draw(1, self.sizes[1]), *self.draw(2, self.sizes[2]))

    def draw(self, split: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` images and labels of one split (0 train, 1 val, 2 test), each from its own generator
        (the key's epoch and batch places hold the split and the part), so a split's first items and
        the other splits do not change with how many items are drawn: subset sweeps see nested
        training sets and one test set."""
        assert self.declared_shape is not None
        images = generator(self.dataset_seed, DATA, epoch=split, batch=0)
        labels = generator(self.dataset_seed, DATA, epoch=split, batch=1)
        x = torch.randn(n, *self.declared_shape, generator=images)
        return x, torch.randint(self.num_classes, (n,), generator=labels)
