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
- ``packs``: the 12 widths 2..47 of the grid x 5 seeds as ONE job (``replicas=5 pack_widths=[...]``,
  60 MLPs zero-padded to width 47, one process) over the same as a ``replicas=5`` sweep of 12 jobs
  (the local launcher's 2 processes), both without per-epoch evaluation, in the same run. Every
  member's first-epoch training loss must equal its job's replica (within 1e-4, relative).

- ``packed``: wall time of ``python src/train.py -m experiment=double_descent hydra/launcher=packed
  seed=0,1,2,3,4`` (19 widths x 5 seeds, planned into packs, 2 processes) over the hand-written
  one-seed sweep (the mean of one run before and one after it), both without per-epoch
  evaluation, in the same run (issue target: <= 1.2).
- ``packed1``: the same with one seed (``seed=0``: widths packed, no seeds) over the hand-written
  one-seed sweep (issue target: <= 0.6).
- ``cnn``: ``-m experiment=double_descent_mnist1d_cnn`` (29 widths, one seed, 50 epochs, no
  per-epoch evaluation), ``hydra/launcher=packed`` over ``hydra/launcher=local`` (issue target:
  <= 0.5); every width's test loss must agree (relative 1e-3) or the benchmark stops.
- ``steps``: milliseconds per optimizer step of stacked MLPs (width 2 x 1 and x 50, 300 x 1, 5, 10,
  47 x 10, 135 x 10; one thread, in this process) and the packed launcher's step-cost constants
  fitted on them.

    python -m benchmarks.replicas [--quick] [--part ratios|sweep|all|gpu|packs|packed|packed1|cnn|steps] [--keep DIR]
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.sweep_fit import REPO, _hand_job, _hand_sweep, _sweep_params, launch_sweep

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

    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.replicas --part gpu needs a CUDA device; run it on a GPU machine")
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


SMALL = [47, 36, 27, 21, 16, 12, 9, 7, 5, 4, 3, 2]  # the grid's widths <= 47: compute of microseconds


def _first_losses(results: list[Path]) -> dict[tuple[int, int], float]:
    """(width, seed) -> the first epoch's training loss of each replica (its job's metrics.csv)."""
    first = {}
    for path in results:
        data = json.loads(path.read_text())
        k = data["replica"]["index"]
        with open(path.parent.parent / "metrics.csv") as f:
            losses = [row[f"replica_{k}/train/loss"] for row in csv.DictReader(f) if row["epoch"] == "0"]
        first[(int(data["width"]), int(data["seed"]))] = float(next(v for v in losses if v))
    return first


def pack_rows(quick: bool, data_dir: str) -> list[tuple]:
    epochs, seeds = (20 if quick else 500), 5
    widths = ",".join(map(str, SMALL))
    with tempfile.TemporaryDirectory() as tmp:
        sweep_wall, proc = launch_sweep(
            epochs, Path(tmp) / "sweep", data_dir, f"replicas={seeds}", f"model.width={widths}"
        )
        swept = list((Path(tmp) / "sweep").glob("double_descent/multiruns/*/*/replica_*/results.json"))
        if proc.returncode != 0 or len(swept) != seeds * len(SMALL):
            raise RuntimeError(f"replicas sweep: exit {proc.returncode}, {len(swept)} results\n{proc.stderr[-3000:]}")
        cmd = [
            sys.executable,
            "src/train.py",
            "experiment=double_descent",
            *NO_EVAL,
            f"trainer.max_epochs={epochs}",
            f"paths.log_dir={Path(tmp) / 'pack'}",
            f"replicas={seeds}",
            f"pack_widths=[{widths}]",
            "print_config=false",
        ]
        start = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=REPO, env={**os.environ, "DLF_DATA_DIR": data_dir}, capture_output=True, text=True
        )
        pack_wall = time.perf_counter() - start
        packed = list((Path(tmp) / "pack").glob("double_descent/runs/*/replica_*/results.json"))
        if proc.returncode != 0 or len(packed) != seeds * len(SMALL):
            raise RuntimeError(f"pack job: exit {proc.returncode}, {len(packed)} results\n{proc.stderr[-3000:]}")
        a, b = _first_losses(swept), _first_losses(packed)
    drift = {key: abs(a[key] - b[key]) / max(abs(a[key]), 1e-3) for key in a}
    worst = max(drift, key=lambda key: drift[key])
    print(
        f"first-epoch train loss, pack vs replicas sweep: max relative difference {drift[worst]:.1e}", file=sys.stderr
    )
    if drift[worst] > 1e-4 or a.keys() != b.keys():
        raise RuntimeError(f"(width, seed) {worst}: first-epoch loss {a[worst]} in the sweep, {b[worst]} packed")
    name = (
        f"packs: MNIST-1D double descent, widths 2..47 ({len(SMALL)}) x {seeds} seeds x {epochs} epochs, one job "
        f"(pack_widths, 1 process) / a replicas={seeds} sweep of {len(SMALL)} jobs (2 processes)"
    )
    return [(name, sweep_wall, pack_wall, pack_wall / sweep_wall, "report", True)]


def packed_sweep_rows(quick: bool, data_dir: str, seeds: int = 5) -> list[tuple]:
    widths = [int(w) for w in str(_sweep_params()["model.width"]).split(",")]
    epochs = 20 if quick else 500
    with tempfile.TemporaryDirectory() as tmp:
        before, _ = _hand_sweep(widths, epochs, data_dir)
        wall, proc = launch_sweep(
            epochs, Path(tmp) / "logs", data_dir, "hydra/launcher=packed", f"seed={','.join(map(str, range(seeds)))}"
        )
        after, _ = _hand_sweep(widths, epochs, data_dir)
        # Before and after: a machine that got slower or faster meanwhile shows here, not in the ratio.
        print(f"  hand-written one-seed sweep: {before:.1f} s before, {after:.1f} s after the packed sweep")
        hand_wall = (before + after) / 2
        jobs = Path(tmp) / "logs" / "double_descent" / "multiruns"
        # A pack's members, and a one-member pack launched as its ordinary job.
        results = [*jobs.glob("*/*/replica_*/results.json"), *jobs.glob("*/*/results.json")]
        if proc.returncode != 0 or len(results) != seeds * len(widths):
            raise RuntimeError(f"packed sweep: exit {proc.returncode}, {len(results)} results\n{proc.stderr[-3000:]}")
        # Where the wall goes: each pack's fit time (both workers busy until the last pack ends).
        singles = [json.loads(p.read_text()) for p in jobs.glob("*/*/results.json")]
        packs = [json.loads(p.read_text()) for p in jobs.glob("*/*/replicas.json")]
        packs += [{"fit_seconds": r["fit_seconds"], "replicas": [{"width": r["width"]}]} for r in singles]
        for pack in sorted(packs, key=lambda r: -r["fit_seconds"]):
            members = sorted({r["width"] for r in pack["replicas"]}, reverse=True)
            per_width = len(pack["replicas"]) // len(members)
            print(f"  pack widths {members} x {per_width} seeds: fit {pack['fit_seconds']:.1f} s")
        print(f"  packs' fit time: {sum(r['fit_seconds'] for r in packs):.1f} s in all, {wall:.1f} s wall")
    name = (
        f"packed sweep: MNIST-1D double descent, {len(widths)} widths x {seeds} seeds x {epochs} epochs "
        "(hydra/launcher=packed), wall / hand-written sweep of one seed (2 processes each)"
    )
    ratio, target = wall / hand_wall, 1.2 if seeds > 1 else 0.6  # issue 27's targets
    return [(name, hand_wall, wall, ratio, "report" if quick else f"<= {target}", quick or ratio <= target)]


STEP_CASES = {  # (width, stacked models): what the packed launcher's step-cost constants are fitted on
    "w2 r1": (2, 1),
    "w2 r50": (2, 50),
    "w300 r1": (300, 1),
    "w300 r5": (300, 5),
    "w300 r10": (300, 10),
    "w47 r10": (47, 10),
    "w135 r10": (135, 10),
}


def step_rows(quick: bool, data_dir: str) -> list[tuple]:
    """Seconds per optimizer step of stacked MLPs (one thread, in this process, 200 steps each),
    and the constants of dlfoundations.launch.packed fitted on them: the step's own cost (width 2,
    one model), each member's (width 2, 50 models) and the stacked products' FLOP rate."""
    from dlfoundations.launch.packed import mlp_flops

    epochs = 2 if quick else 5
    _fit_seconds(2, 1, 1, data_dir)  # warm-up
    ms = {name: _fit_seconds(w, r, epochs, data_dir) / (40 * epochs) * 1e3 for name, (w, r) in STEP_CASES.items()}
    for name, value in ms.items():
        print(f"  {name}: {value:.3f} ms per step")
    member = (ms["w2 r50"] - ms["w2 r1"]) / 49
    for name, (w, r) in STEP_CASES.items():
        if w >= 47:
            compute = (ms[name] - ms["w2 r1"] - r * member) / r
            rate = 3 * 100 * mlp_flops(w, 40, 2, 10) / compute / 1e6  # forward + backward, batch 100
            print(f"  {name}: {compute:.3f} ms per member, {rate:.1f} GFLOP/s")
    print(f"  STEP_SECONDS {ms['w2 r1'] / 1e3:.2e}, MEMBER_SECONDS {member / 1e3:.2e}")
    return []


def _cnn_sweep(launcher: str, epochs: int, log_dir: Path, data_dir: str) -> tuple[float, dict[int, float]]:
    cmd = [
        sys.executable,
        "src/train.py",
        "-m",
        "experiment=double_descent_mnist1d_cnn",
        f"hydra/launcher={launcher}",
        *NO_EVAL,
        f"trainer.max_epochs={epochs}",
        f"paths.log_dir={log_dir}",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "DLF_DATA_DIR": data_dir}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    losses = {}
    for path in log_dir.glob("double_descent_mnist1d_cnn/multiruns/*/*/**/results.json"):
        data = json.loads(path.read_text())
        losses[int(data["width"])] = float(data["metrics"]["test/loss"])
    if proc.returncode != 0 or len(losses) != 29:
        raise RuntimeError(
            f"{launcher} CNN sweep: exit {proc.returncode}, {len(losses)} results\n{proc.stderr[-3000:]}"
        )
    return wall, losses


def cnn_rows(quick: bool, data_dir: str) -> list[tuple]:
    """The MNIST-1D CNN's 29 widths, one seed: packed against the local launcher (issue target <= 0.5)."""
    epochs = 5 if quick else 50
    with tempfile.TemporaryDirectory() as tmp:
        local_wall, local = _cnn_sweep("local", epochs, Path(tmp) / "local", data_dir)
        packed_wall, packed = _cnn_sweep("packed", epochs, Path(tmp) / "packed", data_dir)
    # The same runs: every width's test loss alike (float32: rounding of stacked vs single kernels).
    worst = max(abs(packed[w] - local[w]) / max(abs(local[w]), 1e-3) for w in local)
    print(f"  CNN sweep: largest relative test-loss difference packed vs local {worst:.2g}")
    if worst > 1e-3:
        raise RuntimeError(f"packed and local CNN sweeps differ: relative test loss {worst:.2g}")
    name = f"MNIST-1D CNN sweep, 29 widths x 1 seed x {epochs} epochs, packed / local launcher (2 workers each)"
    ratio = packed_wall / local_wall
    return [(name, local_wall, packed_wall, ratio, "report" if quick else "<= 0.5", quick or ratio <= 0.5)]


def run(quick: bool = False, part: str = "all", keep: str | None = None) -> list[tuple]:
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
        if part == "packs":
            rows += pack_rows(quick, data_dir)
        if part == "packed":
            rows += packed_sweep_rows(quick, data_dir)
        if part == "packed1":
            rows += packed_sweep_rows(quick, data_dir, seeds=1)
        if part == "cnn":
            rows += cnn_rows(quick, data_dir)
        if part == "steps":
            rows += step_rows(quick, data_dir)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs (a smoke run)")
    parser.add_argument(
        "--part",
        choices=["ratios", "sweep", "all", "gpu", "packs", "packed", "packed1", "cnn", "steps"],
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
