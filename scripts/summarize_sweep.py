"""Summarize a Hydra sweep dir after the fact: summary.csv, summary.png and failed.txt.

    python scripts/summarize_sweep.py logs/double_descent/multiruns/<date>_<id>
    python scripts/summarize_sweep.py <sweep dir> --y test/err train_eval/err --group-by data.label_noise

Works on partial sweeps and on sweeps where jobs failed: finished jobs are plotted, the others
are listed. Without --x/--y/... it uses the sweep's own sweep_summary settings (from a job's
.hydra/hydra.yaml), as the end-of-sweep callback would have.
"""

import argparse
import sys
from pathlib import Path

import yaml

from dlfoundations.sweeps import write_summary

OPTIONS = ("x", "y", "labels", "logx", "logy", "title", "xlabel", "ylabel", "group_by", "replicate_keys", "band",
           "epsilon", "threshold_x")


def sweep_settings(sweep_dir: Path) -> dict:
    """The sweep_summary options the sweep was launched with, if any job recorded them."""
    for hydra_yaml in sorted(sweep_dir.glob("*/.hydra/hydra.yaml")):
        callbacks = (yaml.safe_load(hydra_yaml.read_text()) or {}).get("hydra", {}).get("callbacks") or {}
        options = callbacks.get("sweep_summary") or {}
        if options:
            return {k: v for k, v in options.items() if k in OPTIONS and v is not None and "${" not in str(v)}
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--x", help="column for the x axis (default: num_params)")
    parser.add_argument("--y", nargs="+", help="metrics to plot, e.g. test/err train_eval/err")
    parser.add_argument("--group-by", help="one curve per value of this override, e.g. data.label_noise")
    parser.add_argument("--linear-x", action="store_true", help="linear instead of log x axis")
    parser.add_argument("--title")
    parser.add_argument("--band", choices=["std", "ci95", "none"], help="band over seeds: mean +- std, 95%% CI, none")
    parser.add_argument("--epsilon", type=float, help="interpolation threshold: train_eval/err <= epsilon (0.01)")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    options = sweep_settings(args.sweep_dir)
    for key, value in (("x", args.x), ("y", args.y), ("group_by", args.group_by), ("title", args.title),
                       ("band", args.band), ("epsilon", args.epsilon)):
        if value is not None:
            options[key] = value
    if args.linear_x:
        options["logx"] = False
    summary = write_summary(args.sweep_dir, **options)
    print(f"{len(summary['rows'])} finished job(s) -> {args.sweep_dir / 'summary.csv'}, {args.sweep_dir / 'summary.png'}")
    for failed in summary["failed"]:
        print(f"failed: job {failed['job']} ({failed['overrides']}): {failed['error']}")
    if not summary["rows"] and not summary["failed"]:
        print(f"error: no sweep jobs (folders with .hydra/overrides.yaml) in {args.sweep_dir}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
