"""Speed options (off by default on CPU) through the project's training path, each against the same
run without it, in this process: ``compile: true`` (torch.compile, inductor; the row's time
includes compiling), ``trainer.precision=bf16-mixed`` and ``channels_last: true``. With a GPU the
runs use it, and the seed's memorize experiment (AlexNet, 6,000 MNIST-sized images, 150 epochs) is
timed end to end against the issue's target of 60 s on one H100.

    python -m benchmarks.gpu_options [--quick]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.data_path import _write_idx
from dlfoundations.config.compose import compose_config
from dlfoundations.run.train import main

QUIET = ["print_config=false", "test=false", "logger=csv"]
MLP = [
    "experiment=double_descent",
    "model.width=100",
    "data.eval_sets=[]",
    "callbacks.eval_schedule=null",
    *QUIET,
]  # no callbacks, no per-epoch evaluation
CNN = [
    "experiment=memorize",
    "data=mnist_bundled",
    "data.subset_size=null",
    "data.train_size=4000",
    "data.val_size=500",
    "data.test_size=500",
    "model=smallnet",
    "model.width=8",
    "model.hidden=128",
    *QUIET,
    "callbacks.model_checkpoint=null",
    "callbacks.training_curves=null",
    "callbacks.rng_state=null",
]


def _seconds(overrides: list[str], out: Path, data_dir: str) -> float:
    cfg = compose_config(overrides, str(out), data_dir)
    start = time.perf_counter()
    main(cfg)
    return time.perf_counter() - start


def run(quick: bool = False) -> list[tuple]:
    gpu = torch.cuda.is_available()
    device = ["trainer=gpu"] if gpu else ["trainer=cpu"]
    mlp_epochs, cnn_epochs = (5, 1) if quick else (50, 3)
    variants = [
        ("compile: true (incl. compiling)", [*MLP, f"trainer.max_epochs={mlp_epochs}"], ["speed.compile=true"]),
        ("trainer.precision=bf16-mixed", [*CNN, f"trainer.max_epochs={cnn_epochs}"], ["trainer.precision=bf16-mixed"]),
        ("channels_last: true", [*CNN, f"trainer.max_epochs={cnn_epochs}"], ["speed.channels_last=true"]),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        _seconds([*MLP, *device, "trainer.max_epochs=1"], Path(tmp) / "warmup", tmp)  # MNIST-1D cache, imports
        for i, (name, base, option) in enumerate(variants):
            workload = "MNIST-1D MLP" if base[0] == MLP[0] else "small CNN"
            t_base = _seconds([*base, *device], Path(tmp) / f"{i}base", tmp)
            t_option = _seconds([*base, *device, *option], Path(tmp) / f"{i}option", tmp)
            rows.append(
                (
                    f"{name}, {workload} on {'GPU' if gpu else 'CPU'}, option / without",
                    t_base,
                    t_option,
                    t_option / t_base,
                    "report",
                    True,
                )
            )
        if gpu:
            rows.append(_memorize_row(Path(tmp), quick))
    return rows


def _memorize_row(tmp: Path, quick: bool) -> tuple:
    """The seed's memorize experiment on MNIST-sized data (random pixels in the real IDX format:
    the time does not depend on the pixel values, and the device machine has no internet)."""
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, shape in (
        ("train-images-idx3-ubyte", (60000, 28, 28)),
        ("train-labels-idx1-ubyte", (60000,)),
        ("t10k-images-idx3-ubyte", (10000, 28, 28)),
        ("t10k-labels-idx1-ubyte", (10000,)),
    ):
        _write_idx(raw / name, rng.integers(0, 256 if "images" in name else 10, shape))
    epochs = 10 if quick else 150
    seconds = _seconds(
        [
            "experiment=memorize",
            "trainer.gpus=1",
            f"trainer.max_epochs={epochs}",
            "print_config=false",
            "data.download=false",
        ],
        tmp / "memorize",
        str(tmp),
    )
    return (
        f"memorize (AlexNet, 6,000 images, {epochs} epochs) end to end on one GPU, s vs 60 s",
        60.0,
        seconds,
        seconds / 60.0,
        "<= 1.0",
        seconds <= 60.0 or quick,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="speed options vs the same run without them")
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(f"{row[0]}: without {row[1]:.2f} s, with {row[2]:.2f} s, ratio {row[3]:.3f}")
