"""Benchmark runner: ``python -m benchmarks [--quick]`` (or ``make bench``).

Prints one table: workload, baseline time, project time, ratio, target, pass/fail. Each benchmark
module runs in a fresh process of its own (one module's allocations must not slow the next one
down), and each ratio is measured within that process: baseline and project alternate, medians
of repeats (machines are noisy; only ratios count).
"""

import argparse
import json
import subprocess
import sys

import torch


def _rows(module: str, quick: bool) -> list[tuple]:
    """``benchmarks.<module>.run(quick)`` in a child process; its rows come back as JSON."""
    code = (
        f"import json, sys; from benchmarks import {module}; "
        f"rows = {module}.run({quick}); print('\\nROWS ' + json.dumps(rows))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ROWS ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"benchmark {module} failed (exit {proc.returncode})")
    return [tuple(row) for row in json.loads(lines[-1][5:])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and epochs (a smoke run)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep rows (about 12 minutes on 2 cores)")
    args = parser.parse_args(argv)
    modules = [
        "data_path",
        "overhead",
        *([] if args.no_sweep else ["sweep", "sweep_fit", "replicas"]),
        "gpu_options",
        "fold_bn",
        "eval_schedule",
    ]
    rows = []
    for module in modules:
        rows += _rows(module, args.quick)
        print(f"done: benchmarks.{module}", file=sys.stderr, flush=True)
    device = (
        torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU only, {torch.get_num_threads()} threads"
    )
    print(f"\n{device}; times in seconds, medians; ratio = project / baseline except speed-ups (data path, sweep)")
    print(f"{'workload':100} {'baseline':>9} {'project':>9} {'ratio':>7} {'target':>8}  result")
    for name, base, project, ratio, target, ok in rows:
        verdict = "" if target == "report" else ("pass" if ok else "FAIL")
        print(f"{name:100} {base:9.3f} {project:9.3f} {ratio:7.3f} {target:>8}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
