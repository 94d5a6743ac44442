import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers.py

import torchvision  # noqa: E402

from helpers import write_cifar10, write_mnist  # noqa: E402


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data dir as users have it: full-size MNIST files (60,000 + 10,000 random images, real IDX
    format), so configs such as experiment=memorize run unchanged through torchvision's MNIST
    class, and a small CIFAR-10 (5 x 40 + 50 random images) in its real pickled-batch format."""
    root = tmp_path_factory.mktemp("data")
    write_mnist(root, 60_000, 10_000)
    write_cifar10(root, per_batch=40, n_test=50)
    return root


@pytest.fixture
def cifar_files_accepted(monkeypatch):
    """torchvision checks CIFAR-10 files against the MD5 sums of the real ones, which files the
    tests write cannot match; everything else (unpickling, layout) runs as for real files."""
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
