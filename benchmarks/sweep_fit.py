"""Fit time of the MNIST-1D double-descent sweep: the project vs a hand-written PyTorch sweep.

Both sides run the 19 widths of ``experiment=double_descent`` (500 epochs, SGD, batch 100) as 2
parallel single-threaded processes on this machine, each job building its own data (the same
MNIST-1D tensors, labels and initial weights: the hand sweep instantiates the project's data and
model configs under the same seed, then trains with a plain loop). The project side is
``python src/train.py -m experiment=double_descent`` (the local launcher, without the per-epoch
evaluation schedule, which the hand sweep does not do either); its fit time is the
sum of the jobs' ``fit_seconds`` (``trainer.fit`` alone). The hand side times its training loop
alone. Ratio = project / hand over the summed fit times; wall times of both sweeps are printed
too. Each job's final training loss must agree between the sides, or the row compares different
work and the benchmark stops.

A third sweep, the Lightning floor, runs the hand loop's work (same data, model, SGD and per-epoch
train loss) as the smallest LightningModule that keeps what the project's step must keep:
manual optimization with ``training_step(self, dataloader_iter)`` pulling the epoch's 40 batches,
``self.manual_backward`` and the Lightning optimizer's ``step()`` per batch, under a Trainer with
no logger, callbacks, checkpoints or validation. Floor / hand is what Lightning's public
per-step API costs on this workload; project / floor is what the project adds on top (metrics,
logging, its hooks).

    python -m benchmarks.sweep_fit [--quick] [--override callbacks=none ...]
"""

import argparse
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _sweep_params() -> dict:
    import yaml

    experiment = yaml.safe_load((REPO / "conf" / "experiment" / "double_descent.yaml").read_text())
    return experiment["hydra"]["sweeper"]["params"]


def _job_data(width: int, epochs: int, data_dir: str):
    """The job's config (``experiment=double_descent`` at ``width``) and its data splits, seeded as the
    project seeds a run; the next draw from the global RNG is the model's initialisation."""
    import hydra
    import torch

    from dlfoundations.config.compose import compose_config
    from dlfoundations.seeding import seed_run

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config(
            ["experiment=double_descent", f"model.width={width}", f"trainer.max_epochs={epochs}"], tmp, data_dir
        )
    seed_run(cfg.seed)
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()
    return cfg, dm.splits


def _hand_job(args: tuple[int, int, str]) -> tuple[int, float, float, float]:
    """One width trained by a hand-written loop; returns (width, fit seconds, last and first epoch's
    train loss)."""
    width, epochs, data_dir = args
    import hydra
    import torch
    import torch.nn.functional as F

    from dlfoundations.data import TensorBatchLoader

    cfg, s = _job_data(width, epochs, data_dir)
    net = hydra.utils.instantiate(cfg.model)
    o = cfg.optimizer
    opt = torch.optim.SGD(net.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    loader = TensorBatchLoader((s.x_train, s.y_train), batch_size=cfg.data.batch_size, shuffle=True, seed=cfg.seed)
    start = time.perf_counter()
    first_loss = math.nan
    for epoch in range(epochs):
        net.train()
        loader.sampler.set_epoch(epoch)
        loss_sum = torch.zeros(())
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(y)
        train_loss = float(loss_sum) / len(s.y_train)  # one host sync per epoch, as the project's logging
        first_loss = train_loss if epoch == 0 else first_loss
    return width, time.perf_counter() - start, train_loss, first_loss


def _floor_job(args: tuple[int, int, str]) -> tuple[int, float, float, float]:
    """One width trained by the Lightning floor (see the module doc); returns what _hand_job does."""
    width, epochs, data_dir = args
    import hydra
    import lightning as L
    import torch
    import torch.nn.functional as F

    from dlfoundations.data import TensorBatchLoader

    cfg, s = _job_data(width, epochs, data_dir)
    o, steps_per_epoch = cfg.optimizer, -(-len(s.y_train) // cfg.data.batch_size)
    losses: list[float] = []

    class Floor(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = hydra.utils.instantiate(cfg.model)
            self.automatic_optimization = False

        def training_step(self, dataloader_iter):  # the project's loop, without its metrics
            optimizer = self.optimizers()
            loss_sum = torch.zeros(())
            for _ in range(steps_per_epoch):
                (x, y), _, _ = next(dataloader_iter)
                loss = F.cross_entropy(self.net(x), y)
                optimizer.zero_grad()
                self.manual_backward(loss)
                optimizer.step()
                loss_sum += loss.detach() * len(y)
            losses.append(float(loss_sum) / len(s.y_train))  # one host sync per epoch, as the hand loop

        def configure_optimizers(self):
            return torch.optim.SGD(self.net.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)

        def train_dataloader(self):
            return TensorBatchLoader(
                (s.x_train, s.y_train), batch_size=cfg.data.batch_size, shuffle=True, seed=cfg.seed
            )

    module = Floor()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    start = time.perf_counter()
    trainer.fit(module)
    return width, time.perf_counter() - start, losses[-1], losses[0]


def _pool_sweep(
    job, widths: list[int], epochs: int, data_dir: str
) -> tuple[float, dict[int, tuple[float, float, float]]]:
    start = time.perf_counter()
    # A fresh process per job (as the local launcher's jobs build their own state), 2 at a time.
    with mp.get_context("spawn").Pool(2, maxtasksperchild=1) as pool:
        jobs = pool.map(job, [(w, epochs, data_dir) for w in sorted(widths, reverse=True)], chunksize=1)
    return time.perf_counter() - start, {w: (fit, loss, first) for w, fit, loss, first in jobs}


def _hand_sweep(widths: list[int], epochs: int, data_dir: str) -> tuple[float, dict[int, tuple[float, float, float]]]:
    return _pool_sweep(_hand_job, widths, epochs, data_dir)


def launch_sweep(epochs: int, log_dir: Path, data_dir: str, *extra: str) -> tuple[float, subprocess.CompletedProcess]:
    """``python src/train.py -m experiment=double_descent`` with the local launcher and no per-epoch
    evaluation (the hand sweep does none), plus ``extra`` overrides; returns (wall seconds, process)."""
    cmd = [
        sys.executable,
        "src/train.py",
        "-m",
        "experiment=double_descent",
        "hydra/launcher=local",
        "data.eval_sets=[]",
        "callbacks.eval_schedule=null",
        f"trainer.max_epochs={epochs}",
        f"paths.log_dir={log_dir}",
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "DLF_DATA_DIR": data_dir}, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def _project_sweep(
    epochs: int, log_dir: Path, data_dir: str, extra: tuple[str, ...] = ()
) -> tuple[float, dict[int, tuple[float, float]]]:
    wall, proc = launch_sweep(epochs, log_dir, data_dir, *extra)
    jobs = {}
    for path in log_dir.glob("double_descent/multiruns/*/*/results.json"):
        results = json.loads(path.read_text())
        jobs[int(results["width"])] = (results["fit_seconds"], results["metrics"]["train/loss"])
    if proc.returncode != 0 or not jobs:
        raise RuntimeError(f"project sweep: exit {proc.returncode}, {len(jobs)} results.json\n{proc.stderr[-3000:]}")
    return wall, jobs


def _check_same_work(name: str, hand: dict, other: dict, widths: list[int]) -> None:
    """Each job's final train loss agrees with the hand loop's, or the sides did different work."""
    if sorted(hand) != sorted(other):
        raise RuntimeError(f"widths differ: hand {sorted(hand)}, {name} {sorted(other)}")
    for width in widths:
        loss_hand, loss_other = hand[width][1], other[width][1]
        if abs(loss_hand - loss_other) > 1e-4 * max(1.0, abs(loss_hand)):
            raise RuntimeError(f"width {width}: final train loss {loss_hand} by hand, {loss_other} by the {name}")


def run(quick: bool = False, overrides: tuple[str, ...] = ()) -> list[tuple]:
    """The three rows; ``overrides`` go to the project's sweep (e.g. callbacks=none: its cost of
    writing last.ckpt every epoch)."""
    widths = [int(w) for w in str(_sweep_params()["model.width"]).split(",")]
    epochs = 20 if quick else 500
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = str(Path(tmp) / "data")
        _hand_job((widths[0], 1, data_dir))  # generate the MNIST-1D cache once, untimed
        hand_wall, hand = _hand_sweep(widths, epochs, data_dir)
        floor_wall, floor = _pool_sweep(_floor_job, widths, epochs, data_dir)
        project_wall, project = _project_sweep(epochs, Path(tmp) / "logs", data_dir, overrides)
    _check_same_work("Lightning floor", hand, floor, widths)
    _check_same_work("project", hand, project, widths)
    hand_fit = sum(fit for fit, *_ in hand.values())
    floor_fit = sum(fit for fit, *_ in floor.values())
    project_fit = sum(fit for fit, _ in project.values())
    ratio = project_fit / hand_fit
    print(
        f"wall: hand-written sweep {hand_wall:.1f} s, Lightning floor {floor_wall:.1f} s, project sweep "
        f"{project_wall:.1f} s",
        file=sys.stderr,
    )
    for width in widths:
        h, f, p = hand[width][0], floor[width][0], project[width][0]
        print(
            f"  width {width:3d}: fit hand {h:7.2f} s, floor {f:7.2f} s, project {p:7.2f} s; "
            f"floor/hand {f / h:.3f}, project/hand {p / h:.3f}",
            file=sys.stderr,
        )
    what = f"MNIST-1D double descent, {len(widths)} widths x {epochs} epochs, 2 processes"
    if overrides:
        what += f", project with {' '.join(overrides)}"
    return [
        (
            f"sweep fit time: {what}; project / hand-written (wall {project_wall:.0f} s vs {hand_wall:.0f} s)",
            hand_fit,
            project_fit,
            ratio,
            "report" if quick else "<= 1.10",
            quick or ratio <= 1.10,
        ),
        (
            f"sweep fit time: {what}; Lightning floor / hand-written",
            hand_fit,
            floor_fit,
            floor_fit / hand_fit,
            "report",
            True,
        ),
        (
            f"sweep fit time: {what}; project / Lightning floor",
            floor_fit,
            project_fit,
            project_fit / floor_fit,
            "report",
            True,
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="fit time of the double-descent sweep vs a hand-written sweep")
    parser.add_argument("--quick", action="store_true", help="20 epochs instead of 500")
    parser.add_argument("--override", action="append", default=[], help="an override for the project's sweep")
    args = parser.parse_args()
    for row in run(args.quick, tuple(args.override)):
        print(f"{row[0]}: baseline {row[1]:.1f} s, measured {row[2]:.1f} s, ratio {row[3]:.3f} (target {row[4]})")
