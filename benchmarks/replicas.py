"""Replicas (``replicas=R``): R seeds stacked in one process against one seed alone.

Two parts, both on MNIST-1D double descent (``experiment=double_descent``: 4,000 samples, 15%
label noise, SGD with momentum, batch 100, 40 steps per Lightning call):

- ``ratios``: per replica, the fit time per seed with R replicas over the fit time of one seed alone
  (``fit_seconds`` of ``replicas=R`` / R, over that of ``replicas=1``), for R = 1, 2, 5, 10 at widths
  16, 47 and 300, one thread, runs in this process one after the other. Target: < 1 for R > 1.
- ``sweep``: wall time of ``python src/train.py -m experiment=double_descent replicas=5`` (19
  widths x 5 seeds, 500 epochs, the local launcher: 2 processes, largest widths first) over the wall
  time of the hand-written PyTorch sweep of ONE seed (``benchmarks.sweep_fit``'s: 19 widths, 2
  processes, data built per job), both without per-epoch evaluation, measured in the same run.
  Target: <= 2.5. Replica 0 of every job must have the hand sweep's (seed 0) first-epoch training
  loss (within 1e-4, relative), or the two sides did different work and the benchmark stops.
  ``--keep DIR`` keeps the sweep dir (summary.png: the 5-seed banded figure).

- ``gpu`` (on a GPU machine only): throughput (seeds x steps / s) of R = 8 over R = 1 at width 47.
Packs (widths and seeds in one job, the packed launcher): ``benchmarks.packs``.

    python -m benchmarks.replicas [--quick] [--part ratios|sweep|all|gpu] [--keep DIR]
"""

import argparse
import csv
import json
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.sweep_fit import _hand_job, _hand_sweep, _sweep_params, launch_sweep

NO_EVAL = ["data.eval_sets=[]", "callbacks.eval_schedule=null"]


def _fit_seconds(width: int, replicas: int, epochs: int, data_dir: str, gpu: bool = False) -> float:
    import torch

    from dlfoundations.config.compose import compose_config
    from dlfoundations.run.train import main

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            "experiment=double_descent",
            f"model.width={width}",
            f"replicas={replicas}",
            f"trainer.max_epochs={epochs}",
            *NO_EVAL,
            "test=false",
            "logger=none",
            "print_config=false",
            *(["trainer.gpus=1"] if gpu else []),
        ]
        return float(main(compose_config(overrides, tmp, data_dir))["fit_seconds"])


def gpu_rows(quick: bool, data_dir: str) -> list[tuple]:
    """Throughput (seeds x optimizer steps / s) of R = 8 stacked replicas over R = 1, width 47, on
    the GPU (target >= 5x)."""
    import torch

    epochs = 20 if quick else 200
    _fit_seconds(47, 8, 2, data_dir, gpu=True)  # warm-up: CUDA context, kernels
    one, eight = _fit_seconds(47, 1, epochs, data_dir, gpu=True), _fit_seconds(47, 8, epochs, data_dir, gpu=True)
    speedup = 8 * one / eight  # the same steps per seed on both sides
    name = f"replicas on {torch.cuda.get_device_name()}: throughput of R=8 / R=1, MLP width 47, {epochs} epochs"
    return [(name, one, eight / 8, speedup, ">= 5", speedup >= 5)]


def ratio_rows(quick: bool, data_dir: str) -> list[tuple]:
    epochs = 10 if quick else 100
    rows = []
    _fit_seconds(16, 2, 1, data_dir)  # warm-up: imports, the MNIST-1D cache
    for width in (16, 47, 300):
        one = _fit_seconds(width, 1, epochs, data_dir)
        for replicas in (1, 2, 5, 10):
            seconds = one if replicas == 1 else _fit_seconds(width, replicas, epochs, data_dir)
            per_seed = seconds / replicas
            name = f"replicas: fit time per seed, MLP width {width}, R={replicas} / one seed alone ({epochs} epochs)"
            ok = replicas == 1 or per_seed < one
            rows.append((name, one, per_seed, per_seed / one, "report" if replicas == 1 else "< 1", ok))
            print(
                f"  width {width:3d} R={replicas:2d}: {seconds:7.2f} s, per seed {per_seed / one:.3f}", file=sys.stderr
            )
    return rows


def _project_sweep(epochs: int, replicas: int, log_dir: Path, data_dir: str) -> tuple[float, dict[int, float], Path]:
    wall, proc = launch_sweep(epochs, log_dir, data_dir, f"replicas={replicas}")
    sweeps = list(log_dir.glob("double_descent/multiruns/*"))
    results = list(log_dir.glob("double_descent/multiruns/*/*/replica_*/results.json"))
    if (
        proc.returncode != 0
        or len(sweeps) != 1
        or len(results) != replicas * len(str(_sweep_params()["model.width"]).split(","))
    ):
        raise RuntimeError(
            f"project sweep: exit {proc.returncode}, {len(results)} replica results\n{proc.stderr[-3000:]}"
        )
    first = {}  # width -> replica 0's train loss of its first epoch (the job's metrics.csv)
    for path in results:
        data = json.loads(path.read_text())
        if data["replica"]["index"] == 0:
            with open(path.parent.parent / "metrics.csv") as f:
                losses = [row["replica_0/train/loss"] for row in csv.DictReader(f) if row["epoch"] == "0"]
            first[int(data["width"])] = float(next(v for v in losses if v))
    return wall, first, sweeps[0]


def sweep_rows(quick: bool, data_dir: str, keep: str | None) -> list[tuple]:
    widths = [int(w) for w in str(_sweep_params()["model.width"]).split(",")]
    epochs, replicas = (20 if quick else 500), 5
    with tempfile.TemporaryDirectory() as tmp:
        hand_wall, hand = _hand_sweep(widths, epochs, data_dir)
        project_wall, first, sweep_dir = _project_sweep(epochs, replicas, Path(tmp) / "logs", data_dir)
        if keep:
            shutil.copytree(sweep_dir, Path(keep) / sweep_dir.name)
    # Both sides trained the same thing: replica 0's first-epoch training loss is the hand sweep's
    # (seed 0) up to float rounding. (Final losses are no test: stacked products round differently,
    # and over 20,000 SGD steps near the interpolation threshold trajectories drift apart.)
    drift = {w: abs(hand[w][2] - first[w]) / max(abs(hand[w][2]), 1e-3) for w in widths}
    worst = max(drift, key=lambda w: drift[w])
    print(f"first-epoch train loss, replica 0 vs hand: max relative difference {drift[worst]:.1e}", file=sys.stderr)
    if drift[worst] > 1e-4:
        raise RuntimeError(f"width {worst}: first-epoch loss {hand[worst][2]} by hand, {first[worst]} in replica 0")
    print(
        f"wall: hand-written one-seed sweep {hand_wall:.1f} s, project {replicas} seeds {project_wall:.1f} s",
        file=sys.stderr,
    )
    name = (
        f"replicas: MNIST-1D double descent, {len(widths)} widths x {replicas} seeds (replicas={replicas}) x {epochs} "
        f"epochs, wall / hand-written sweep of one seed (2 processes each)"
    )
    ratio = project_wall / hand_wall
    return [(name, hand_wall, project_wall, ratio, "report" if quick else "<= 2.5", quick or ratio <= 2.5)]


def require_cuda(module: str) -> None:
    """A GPU part where torch sees no CUDA device: one line, exit code 2, before anything runs."""
    import torch

    if not torch.cuda.is_available():
        print(f"error: {module} --part gpu needs a CUDA device (torch sees none); run it on a GPU", file=sys.stderr)
        raise SystemExit(2)


def run(quick: bool = False, part: str = "all", keep: str | None = None) -> list[tuple]:
    if part == "gpu":
        require_cuda("benchmarks.replicas")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = str(Path(tmp) / "data")
        _hand_job((16, 1, data_dir))  # generate the MNIST-1D cache once, untimed
        rows = []
        if part in ("ratios", "all"):
            rows += ratio_rows(quick, data_dir)
        if part in ("sweep", "all"):
            rows += sweep_rows(quick, data_dir, keep)
        if part == "gpu":
            rows += gpu_rows(quick, data_dir)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs (a smoke run)")
    parser.add_argument(
        "--part",
        choices=["ratios", "sweep", "all", "gpu"],
        default="all",
        help="gpu: needs CUDA",
    )
    parser.add_argument("--keep", help="copy the replicated sweep dir (its summary.png) here")
    args = parser.parse_args()
    for row in run(args.quick, args.part, args.keep):
        verdict = "" if row[4] == "report" else ("pass" if row[5] else "FAIL")
        print(
            f"{row[0]}: baseline {row[1]:.2f} s, project {row[2]:.2f} s, ratio {row[3]:.3f} (target {row[4]}) {verdict}"
        )
