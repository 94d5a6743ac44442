"""Benchmark runner: ``python -m benchmarks [--quick]`` (or ``make bench``).

Prints one table: workload, baseline time, project time, ratio, target, pass/fail. Each ratio is
measured in this one process (machines are noisy; only ratios count), medians of repeats.
"""

import argparse
import sys

import torch

from benchmarks import data_path, fold_bn, gpu_options, overhead, sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and epochs (a smoke run)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep rows (about 7 minutes on 2 cores)")
    args = parser.parse_args(argv)
    rows = [*data_path.run(args.quick), *overhead.run(args.quick)]
    if not args.no_sweep:
        rows += sweep.run(args.quick)
    rows += [*gpu_options.run(args.quick), *fold_bn.run(args.quick)]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU only, {torch.get_num_threads()} threads"
    print(f"\n{device}; times in seconds, medians; ratio = project / baseline except speed-ups (data path, sweep)")
    print(f"{'workload':100} {'baseline':>9} {'project':>9} {'ratio':>7} {'target':>8}  result")
    for name, base, project, ratio, target, ok in rows:
        verdict = "" if target == "report" else ("pass" if ok else "FAIL")
        print(f"{name:100} {base:9.3f} {project:9.3f} {ratio:7.3f} {target:>8}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
