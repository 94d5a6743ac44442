"""Benchmark runner: ``python -m benchmarks [--quick]`` (or ``make bench``).

Prints one table: workload, baseline time, project time, ratio, target, pass/fail. Each ratio is
measured in this one process (machines are noisy; only ratios count), medians of repeats.
"""

import argparse
import sys

from benchmarks import data_path, fold_bn, overhead


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and epochs (a smoke run)")
    args = parser.parse_args(argv)
    rows = [*data_path.run(args.quick), *overhead.run(args.quick), *fold_bn.run(args.quick)]
    print(f"\n{'workload':58} {'baseline s':>11} {'project s':>10} {'ratio':>7} {'target':>10}  result")
    for name, base, project, ratio, target, ok in rows:
        print(f"{name:58} {base:11.4f} {project:10.4f} {ratio:7.3f} {target:>10}  {'pass' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
