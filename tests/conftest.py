import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers.py

from helpers import write_mnist  # noqa: E402


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """Full-size MNIST files (60,000 + 10,000 random images) in the real IDX format, so that
    configs such as experiment=memorize run unchanged through torchvision's MNIST class."""
    root = tmp_path_factory.mktemp("mnist_full")
    write_mnist(root, 60_000, 10_000)
    return root
