"""Data delivery: the in-memory batch loader vs torchvision's MNIST + DataLoader + ToTensor.

Both read the same MNIST-sized data (60,000 random 28x28 images written as real IDX files); the
baseline goes through torchvision's MNIST class with ToTensor and a shuffling DataLoader (batch
64, no workers), the project's path keeps the tensors in memory and gathers batches by index.
Time per epoch of delivery alone, and of a small training epoch (MLP 784-100-10, SGD, the same
batch size and the same model initialisation for both loaders), median of repeats;
ratio = baseline / project (speed-up).
"""

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision.datasets import MNIST
from torchvision.transforms import ToTensor

from dlfoundations.data import MNISTDataModule, TensorBatchLoader
from dlfoundations.models import MLP


def _write_idx(path: Path, array: np.ndarray) -> None:
    import struct

    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _epoch_seconds(loader, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for x, y in loader:
            pass
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _training_epoch_seconds(loader, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        torch.manual_seed(0)
        net = MLP(784, width=100, depth=1)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        start = time.perf_counter()
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool = False) -> list[tuple]:
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for name, shape in (
            ("train-images-idx3-ubyte", (60000, 28, 28)),
            ("train-labels-idx1-ubyte", (60000,)),
            ("t10k-images-idx3-ubyte", (10000, 28, 28)),
            ("t10k-labels-idx1-ubyte", (10000,)),
        ):
            _write_idx(raw / name, rng.integers(0, 256 if "images" in name else 10, shape))
        baseline = DataLoader(MNIST(tmp, train=True, transform=ToTensor()), batch_size=64, shuffle=True)
        dm = MNISTDataModule(data_dir=tmp, download=False, val_size=0, on_device=False)
        dm.setup()
        assert dm.splits is not None  # setup() loads them
        ours = TensorBatchLoader((dm.splits.x_train, dm.splits.y_train), batch_size=64, shuffle=True)
        t_base, t_ours = _epoch_seconds(baseline, repeats), _epoch_seconds(ours, repeats)
        train_base, train_ours = _training_epoch_seconds(baseline, repeats), _training_epoch_seconds(ours, repeats)
    ratio, train_ratio = t_base / t_ours, train_base / train_ours
    return [
        (
            "data path: MNIST epoch (60,000 x 28x28, batch 64), DataLoader+ToTensor / in-memory",
            t_base,
            t_ours,
            ratio,
            ">= 3.0",
            ratio >= 3.0,
        ),
        (
            "data path: MNIST training epoch, MLP 784-100-10, DataLoader+ToTensor / in-memory",
            train_base,
            train_ours,
            train_ratio,
            ">= 3.0",
            train_ratio >= 3.0,
        ),
    ]
