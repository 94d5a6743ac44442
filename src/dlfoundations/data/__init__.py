"""In-memory DataModules, label/input corruption and the tensor batch loader."""

from dlfoundations.data.base import InMemoryDataModule, Splits
from dlfoundations.data.cifar10 import CIFAR10DataModule
from dlfoundations.data.loader import TensorBatchLoader
from dlfoundations.data.mnist import MNISTDataModule
from dlfoundations.data.mnist1d import MNIST1DDataModule
from dlfoundations.data.mnist_bundled import BundledMNISTDataModule
from dlfoundations.data.random_images import RandomImagesDataModule
from dlfoundations.data.synthetic import LinearRegressionDataModule

__all__ = [
    "BundledMNISTDataModule",
    "CIFAR10DataModule",
    "InMemoryDataModule",
    "LinearRegressionDataModule",
    "MNIST1DDataModule",
    "MNISTDataModule",
    "RandomImagesDataModule",
    "Splits",
    "TensorBatchLoader",
]
