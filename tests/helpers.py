"""Test helpers: compose the real configs, and write MNIST files in torchvision's on-disk format."""

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from dlfoundations.config.compose import compose_config
from dlfoundations.models import CNN, VGG, LNiN, PreActResNet18, ResNet18, SmallNet, STMNet

REPO = Path(__file__).resolve().parents[1]

# Every model family with BN, scaled down for CPU tests: family -> build(batch_norm).
BN_FAMILIES = {
    "smallnet": lambda bn: SmallNet(batch_norm=bn),
    "vgg16": lambda bn: VGG(batch_norm=bn, width=0.25),
    "resnet18": lambda bn: ResNet18(batch_norm=bn, width=8),
    "resnet18-imagenet": lambda bn: ResNet18(batch_norm=bn, width=8, stem="imagenet"),
    "resnet18k": lambda bn: PreActResNet18(batch_norm=bn, width=4),
    "cnn": lambda bn: CNN(batch_norm=bn, width=4),
    "stm": lambda bn: STMNet(batch_norm=bn, width=16, cardinality=4),
    "nin": lambda bn: LNiN(batch_norm=bn, width=4, hidden=8),
}


# Short runs shared by the training-step tests: an MNIST-1D MLP with an epoch schedule, and a CIFAR
# CNN with batch augmentation and a per-step schedule.
MLP = [
    "data=mnist1d",
    "data.train_size=470",
    "data.val_size=0",
    "data.test_size=100",
    "data.batch_size=50",
    "data.label_noise=0.2",
    "model=mlp",
    "model.width=32",
    "trainer.max_epochs=3",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.training_curves=null",
    "scheduler=step",
    "scheduler.factory.step_size=1",
    "scheduler.factory.gamma=0.5",
]
CIFAR = [
    "data=cifar10",
    "data.subset_size=150",
    "data.batch_size=16",
    "model=cnn",
    "model.width=4",
    "trainer.max_epochs=2",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.training_curves=null",
    "scheduler=inverse_sqrt",
    "scheduler.factory.every=4",
]


def make_cfg(overrides: list[str], out_dir: Path, data_dir: Path | None = None) -> DictConfig:
    """Compose conf/train.yaml as the CLI would, with the run dir set to ``out_dir``."""
    return compose_config(["print_config=false", *overrides], str(out_dir), str(data_dir) if data_dir else None)


def run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``python src/train.py *args`` in a subprocess on CPU, output captured."""
    environ = {**os.environ, "CUDA_VISIBLE_DEVICES": "", **env}
    return subprocess.run(
        [sys.executable, str(REPO / "src" / "train.py"), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (the format of the MNIST distribution files)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root: Path, n_train: int, n_test: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random images and labels as the four MNIST files under ``root/MNIST/raw``."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(raw / name, array)
    return arrays


def write_cifar10(root: Path, per_batch: int, n_test: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random images in CIFAR-10's python format (pickled batches) under ``root/cifar-10-batches-py``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(folder / name, "wb") as f:
            # The real files are Python 2 pickles whose str keys load as str with encoding="latin1".
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, f, protocol=2)
        out[name] = data
    with open(folder / "batches.meta", "wb") as f:
        names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        pickle.dump({"label_names": names, "num_cases_per_batch": per_batch}, f, protocol=2)
    return out


def end_single_run(cfg: DictConfig) -> None:
    """What Hydra does after a single run has returned: the run callbacks of conf/hydra/default.yaml
    (a run of an experiment with a reference writes its report)."""
    from hydra.core.utils import JobReturn, JobStatus

    from dlfoundations.launch.callback import RunReport

    RunReport().on_job_end(config=cfg, job_return=JobReturn(status=JobStatus.COMPLETED))
