import os
from pathlib import Path

import pytest
import torch
import torchvision

from tests.helpers import write_cifar10, write_mnist


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run wherever torch sees a CUDA device and are skipped, saying so, elsewhere."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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
    # torchvision's public check_integrity(path, md5), as cifar.py calls it: the file must exist;
    # only the MD5 comparison with the real files is left out.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
