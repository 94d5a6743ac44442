"""Summarize a Hydra sweep dir after the fact: summary.csv, summary.png and failed.txt.

    python scripts/summarize_sweep.py logs/double_descent/multiruns/<date>_<id>
    python scripts/summarize_sweep.py <sweep dir> --y test/err train_eval/err --group-by data.label_noise

Works on partial sweeps and on sweeps where jobs failed: finished jobs are plotted, the others
are listed. Without --x/--y/... it uses the sweep's own sweep_summary settings (from a job's
.hydra/hydra.yaml), as the end-of-sweep callback would have. With x num_params (the default) and
the same parameter count in every job, x is the swept setting instead. A metric or column that no
job has is a one-line error (exit 2) naming those there are, and nothing is written.
"""

import argparse
import sys
from pathlib import Path

import yaml

from dlfoundations.config.schemas import Figure
from dlfoundations.errors import UserError
from dlfoundations.record.collect import collect
from dlfoundations.results.summary import check_options, write_summary

OPTIONS = (
    "x",
    "y",
    "labels",
    "logx",
    "logy",
    "title",
    "xlabel",
    "ylabel",
    "group_by",
    "replicate_keys",
    "band",
    "epsilon",
    "threshold_x",
    "figures",
)


def sweep_settings(sweep_dir: Path) -> dict:
    """The sweep_summary options the sweep was launched with, if any job recorded them."""
    for hydra_yaml in sorted(sweep_dir.glob("*/.hydra/hydra.yaml")):
        callbacks = (yaml.safe_load(hydra_yaml.read_text()) or {}).get("hydra", {}).get("callbacks") or {}
        options = callbacks.get("sweep_summary") or {}
        if options:
            return {k: v for k, v in options.items() if k in OPTIONS and v is not None and "${" not in str(v)}
    return {}


def summarize(args: argparse.Namespace) -> int:
    if not args.sweep_dir.is_dir():
        raise UserError(f"{args.sweep_dir} is not a directory; give a sweep dir (logs/<task>/multiruns/<date>_<id>)")
    options = sweep_settings(args.sweep_dir)
    for key, value in (
        ("x", args.x),
        ("y", args.y),
        ("group_by", args.group_by),
        ("title", args.title),
        ("band", args.band),
        ("epsilon", args.epsilon),
        ("figures", args.figures),
    ):
        if value is not None:
            options[key] = value
    if args.linear_x:
        options["logx"] = False
    # Check before writing: a typo must not replace a good summary with an empty one.
    rows, failed = collect(args.sweep_dir, keys=tuple(k for k in (options.get("x"), options.get("group_by")) if k))
    if not rows and not failed:
        raise UserError(f"no sweep jobs (folders with .hydra/overrides.yaml) in {args.sweep_dir}")
    if rows:  # with no finished job there is nothing to check against (and nothing will be plotted)
        check_options(rows, args.x, args.y, args.group_by)
    summary = write_summary(args.sweep_dir, **options)
    for f in summary["failed"]:
        print(f"failed: job {f['job']} ({f['overrides']}): {f['error']}")
    written = ", ".join(str(p) for p in summary["written"]) or "nothing written"
    print(f"{len(summary['rows'])} finished job(s), x = {summary['x']} -> {written}")
    if not summary["rows"]:
        print(f"error: no job of {args.sweep_dir} finished; nothing to plot", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_dir", type=Path, help="a multirun dir: job folders 0, 1, ... with .hydra/")
    parser.add_argument("--x", help="column for the x axis (default: num_params, or the swept setting)")
    parser.add_argument("--y", nargs="+", help="metrics to plot, e.g. test/err train_eval/err")
    parser.add_argument("--group-by", help="one curve per value of this setting, e.g. data.label_noise")
    parser.add_argument("--linear-x", action="store_true", help="linear instead of log x axis")
    parser.add_argument("--title")
    parser.add_argument("--band", choices=["std", "ci95", "none"], help="band over seeds: mean +- std, 95%% CI, none")
    parser.add_argument("--epsilon", type=float, help="interpolation threshold: train_eval/err <= epsilon (0.01)")
    parser.add_argument(
        "--figures",
        nargs="+",
        choices=[f.value for f in Figure],
        help="what to draw (default: the figures the sweep's runs name, or each the sweep allows)",
    )
    args = parser.parse_args(argv)
    try:
        return summarize(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
