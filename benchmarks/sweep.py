"""Sweep throughput: the MNIST-1D double-descent sweep (19 widths, 500 epochs each) end to end.

Runs ``python src/train.py -m experiment=double_descent`` twice, each time from a new process:
with the local launcher (parallel worker processes, one job per core) and with Hydra's basic
launcher (the widths one after another in one process, torch using all cores). Both write every
job's results.json and the sweep's summary.png; the benchmark checks that all 19 jobs finished.
Prints wall seconds, jobs per minute, and the speed-up of the parallel run over the sequential one.

    python -m benchmarks.sweep [--quick] [--parallel-only]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDTHS = 19  # conf/experiment/double_descent.yaml


def _sweep(launcher: str, epochs: int, tmp: Path) -> float:
    log_dir = tmp / f"{launcher}-{epochs}"
    cmd = [
        sys.executable,
        "src/train.py",
        "-m",
        f"hydra/launcher={launcher}",
        "experiment=double_descent",
        f"trainer.max_epochs={epochs}",
        f"paths.log_dir={log_dir}",
        "data.eval_sets=[]",
        "callbacks.eval_schedule=null",
    ]  # as measured before the eval schedule
    env = {**os.environ, "DLF_DATA_DIR": str(tmp / "data")}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    results = list(log_dir.glob("double_descent/multiruns/*/*/results.json"))
    summary = list(log_dir.glob("double_descent/multiruns/*/summary.png"))
    if proc.returncode != 0 or len(results) != WIDTHS or not summary:
        raise RuntimeError(
            f"{launcher} sweep: exit {proc.returncode}, {len(results)}/{WIDTHS} results.json, "
            f"summary.png {'written' if summary else 'missing'}\n{proc.stderr[-3000:]}"
        )
    for path in results:
        json.loads(path.read_text())  # complete, parseable files
    return seconds


def run(quick: bool = False, parallel_only: bool = False) -> list[tuple]:
    epochs = 20 if quick else 500
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # Generate the MNIST-1D cache once, untimed, so that neither run pays for it.
        _sweep("local", 1, tmp)
        parallel = _sweep("local", epochs, tmp)
        sequential = None if parallel_only else _sweep("basic", epochs, tmp)
    minutes = f"{WIDTHS / parallel * 60:.1f} jobs/min"
    if sequential is not None:
        minutes += f" vs {WIDTHS / sequential * 60:.1f} one after another"
    name = (
        f"sweep: MNIST-1D double descent, {WIDTHS} widths x {epochs} epochs, local launcher on all cores "
        f"({minutes}); ratio = speed-up"
    )
    baseline = sequential if sequential is not None else float("nan")
    target = "report" if quick else "<=180 s"
    return [(name, baseline, parallel, baseline / parallel, target, quick or parallel <= 180.0)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="sweep throughput of the MNIST-1D double-descent sweep")
    parser.add_argument("--quick", action="store_true", help="20 epochs instead of 500")
    parser.add_argument("--parallel-only", action="store_true", help="skip the sequential baseline")
    args = parser.parse_args()
    for row in run(args.quick, args.parallel_only):
        print(f"{row[0]}: one after another {row[1]:.1f} s, local launcher {row[2]:.1f} s, speed-up {row[3]:.2f}")
