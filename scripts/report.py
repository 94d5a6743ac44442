"""Reproduction report of a run or sweep dir against its experiment's published numbers.

    python scripts/report.py logs/double_descent/multiruns/<date>_<id>
    python scripts/report.py logs/memorize_cpu/runs/<date>_<id>

Reads the ``reference:`` block from the run's (or the sweep's first job's) config and the finished
jobs' results.json; writes report.md, report.json and report.png into that dir and prints the
verdict. Exit status 0 when every measured check is within tolerance, 1 when one is not, 2 when
there is nothing to compare (no dir, no reference, no finished job).
"""

import argparse
import sys
from pathlib import Path

from dlfoundations.errors import UserError
from dlfoundations.results.report import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a run dir (with results.json) or a sweep dir (with job folders)")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.path)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{report['passed']} within tolerance, {report['out_of_tolerance']} out of tolerance, "
        f"{report['not_measured']} not measured -> {args.path / 'report.md'}, {args.path / 'report.png'}"
    )
    if not report["passed"] and not report["out_of_tolerance"]:
        print(f"error: none of the reference's checks is measured in {args.path}", file=sys.stderr)
        return 2
    return 1 if report["out_of_tolerance"] else 0


if __name__ == "__main__":
    sys.exit(main())
