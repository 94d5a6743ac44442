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

    python -m benchmarks.sweep_fit [--quick]
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


def _hand_job(args: tuple[int, int, str]) -> tuple[int, float, float, float]:
    """One width trained by a hand-written loop; returns (width, fit seconds, last and first epoch's
    train loss)."""
    width, epochs, data_dir = args
    import hydra
    import lightning as L
    import torch
    import torch.nn.functional as F

    from dlfoundations.compose import compose_config
    from dlfoundations.data import TensorBatchLoader

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config(
            ["experiment=double_descent", f"model.width={width}", f"trainer.max_epochs={epochs}"], tmp, data_dir
        )
    L.seed_everything(cfg.seed, verbose=False)
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()
    net = hydra.utils.instantiate(cfg.model)
    o = cfg.optimizer
    opt = torch.optim.SGD(net.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    s = dm.splits
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


def _hand_sweep(widths: list[int], epochs: int, data_dir: str) -> tuple[float, dict[int, tuple[float, float, float]]]:
    start = time.perf_counter()
    # A fresh process per job (as the local launcher's jobs build their own state), 2 at a time.
    with mp.get_context("spawn").Pool(2, maxtasksperchild=1) as pool:
        jobs = pool.map(_hand_job, [(w, epochs, data_dir) for w in sorted(widths, reverse=True)], chunksize=1)
    return time.perf_counter() - start, {w: (fit, loss, first) for w, fit, loss, first in jobs}


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


def _project_sweep(epochs: int, log_dir: Path, data_dir: str) -> tuple[float, dict[int, tuple[float, float]]]:
    wall, proc = launch_sweep(epochs, log_dir, data_dir)
    jobs = {}
    for path in log_dir.glob("double_descent/multiruns/*/*/results.json"):
        results = json.loads(path.read_text())
        jobs[int(results["width"])] = (results["fit_seconds"], results["metrics"]["train/loss"])
    if proc.returncode != 0 or not jobs:
        raise RuntimeError(f"project sweep: exit {proc.returncode}, {len(jobs)} results.json\n{proc.stderr[-3000:]}")
    return wall, jobs


def run(quick: bool = False) -> list[tuple]:
    widths = [int(w) for w in str(_sweep_params()["model.width"]).split(",")]
    epochs = 20 if quick else 500
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = str(Path(tmp) / "data")
        _hand_job((widths[0], 1, data_dir))  # generate the MNIST-1D cache once, untimed
        hand_wall, hand = _hand_sweep(widths, epochs, data_dir)
        project_wall, project = _project_sweep(epochs, Path(tmp) / "logs", data_dir)
    if sorted(hand) != sorted(project):
        raise RuntimeError(f"widths differ: hand {sorted(hand)}, project {sorted(project)}")
    for width in widths:
        loss_hand, loss_project = hand[width][1], project[width][1]
        if abs(loss_hand - loss_project) > 1e-4 * max(1.0, abs(loss_hand)):
            raise RuntimeError(f"width {width}: final train loss {loss_hand} by hand, {loss_project} by the project")
    hand_fit = sum(fit for fit, *_ in hand.values())
    project_fit = sum(fit for fit, _ in project.values())
    ratio = project_fit / hand_fit
    print(f"wall: hand-written sweep {hand_wall:.1f} s, project sweep {project_wall:.1f} s", file=sys.stderr)
    for width in widths:
        print(
            f"  width {width:3d}: fit hand {hand[width][0]:7.2f} s, project {project[width][0]:7.2f} s, "
            f"ratio {project[width][0] / hand[width][0]:.3f}",
            file=sys.stderr,
        )
    name = (
        f"sweep fit time: MNIST-1D double descent, {len(widths)} widths x {epochs} epochs, 2 processes; "
        f"project / hand-written (wall {project_wall:.0f} s vs {hand_wall:.0f} s)"
    )
    target = "report" if quick else "<= 1.10"
    return [(name, hand_fit, project_fit, ratio, target, quick or ratio <= 1.10)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="fit time of the double-descent sweep vs a hand-written sweep")
    parser.add_argument("--quick", action="store_true", help="20 epochs instead of 500")
    for row in run(parser.parse_args().quick):
        print(f"{row[0]}: hand {row[1]:.1f} s, project {row[2]:.1f} s, ratio {row[3]:.3f} (target {row[4]})")
