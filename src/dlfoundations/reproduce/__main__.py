"""``python -m dlfoundations.reproduce [--only NAME ...] [--quick] [--out DIR]`` (``make reproduce``):
every experiment of the course that runs offline on a CPU, at its published settings, one after
another; then ``<out>/index.html`` and ``<out>/REPORT.md`` with every figure, check and verdict.

Resumable: run it again after Ctrl-C and only what is missing runs (finished runs are kept, an
interrupted run resumes from its last checkpoint). ``--quick`` runs tiny epochs and grids into
``reproduction-quick/`` (a complete page in minutes, not the results). ``--page`` rewrites the page
from what is there without running anything. ``--results NAME=DIR`` puts a run or sweep dir of a
GPU-scale experiment (e.g. ``double_descent_resnet=logs/double_descent_resnet/multiruns/...``) on
the page.

Exit code 0 when every experiment it ran ended with all its runs (the verdicts are on the page),
1 when one failed, had failed runs or was stopped, 2 for a usage mistake (or another
``make reproduce`` writing the same dir), 130 after Ctrl-C or SIGTERM (the page shows what finished).
"""

import argparse
import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from dlfoundations.reproduce.course import COURSE, GPU_SCALE, by_name
from dlfoundations.reproduce.entries import experiment_of
from dlfoundations.reproduce.page import write_page
from dlfoundations.reproduce.runner import (
    FAILED,
    INTERRUPTED,
    Terminated,
    complete,
    overrides_of,
    read_status,
    run_experiment,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dlfoundations.reproduce",
        description="Run the course's CPU experiments at their published settings and build one results page.",
    )
    names = ", ".join(e.name for e in COURSE)
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these experiments (of: {names})")
    parser.add_argument("--quick", action="store_true", help="tiny epochs and grids: the pipeline, not the results")
    parser.add_argument("--out", type=Path, help="output dir (default: reproduction/, or reproduction-quick/)")
    parser.add_argument("--page", action="store_true", help="only rewrite the page from the runs already there")
    parser.add_argument("--list", action="store_true", help="print the experiments and their commands, run nothing")
    gpu = ", ".join(e.name for e in GPU_SCALE)
    parser.add_argument(
        "--results",
        nargs="+",
        default=[],
        metavar="NAME=DIR",
        help=f"run or sweep dirs of GPU-scale experiments ({gpu})",
    )
    return parser


def _given(pairs: list[str], parser: argparse.ArgumentParser) -> dict[str, Path]:
    known = {e.name for e in GPU_SCALE}
    given = {}
    for pair in pairs:
        name, eq, directory = pair.partition("=")
        if not eq or name not in known:
            parser.error(f"--results {pair}: give NAME=DIR with NAME one of {', '.join(sorted(known))}")
        if not Path(directory).is_dir():
            parser.error(f"--results {pair}: {directory} is not a directory")
        if name in given:
            parser.error(f"--results {name}= is given twice; give one dir per experiment")
        try:
            found = experiment_of(Path(directory))
        except Exception as err:  # a damaged config: said, as any other unusable dir
            parser.error(f"--results {pair}: its config cannot be read ({type(err).__name__}); give {name}'s own dir")
        if name not in found:
            held = " or ".join(sorted(found)) or "no experiment's"
            parser.error(f"--results {pair}: that dir holds {held} runs, not {name}; give {name}'s own dir")
        given[name] = Path(directory)
    return given


def _lock(out: Path, parser: argparse.ArgumentParser) -> int:
    """Hold ``<out>/.lock`` while running (the experiments' processes inherit it, so a sweep left
    running by a killed ``make reproduce`` still holds it): a second one writing the same dir is
    refused."""
    try:
        fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o664)
    except OSError as err:
        parser.error(f"--out {out}: cannot write there ({err.strerror}); give a directory you can write")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        parser.error(f"another make reproduce (or a sweep it started) is writing {out}; wait, or give another --out")
    return fd


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        experiments = by_name(args.only)
    except ValueError as err:
        parser.error(str(err))
    given = _given(args.results, parser)
    out: Path = args.out or Path("reproduction-quick" if args.quick else "reproduction")
    if args.list:
        for e in experiments:
            print(f"{e.name}: python src/train.py -m {' '.join(overrides_of(e, args.quick))}")
        for g in GPU_SCALE if not args.only else ():
            print(f"{g.name} (needs {g.needs}): {g.command}")
        return 0
    if args.page and args.only:
        parser.error("--page rewrites the whole page from what is there; drop --only")
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file; give a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"--out {out}: cannot create it ({err.strerror}); give a directory you can write")
    if args.page:
        page, _ = write_page(out, args.quick, given)
        print(f"page: {page}")
        return 0
    lock = _lock(out, parser)
    previous = signal.signal(signal.SIGTERM, _terminated)  # like Ctrl-C: the sweep summarizes, the page is written
    ended = []
    start = time.monotonic()
    try:
        for i, experiment in enumerate(experiments, 1):
            earlier = read_status(out, experiment.name)
            if complete(earlier, experiment, out, args.quick):
                print(f"[{i}/{len(experiments)}] {experiment.name}: done earlier ({earlier.wall_seconds:.0f} s), kept")
                ended.append(earlier)
                continue
            print(f"[{i}/{len(experiments)}] {experiment.name}: {experiment.title}", flush=True)
            status = run_experiment(
                experiment, out, args.quick, say=lambda line: print(line, flush=True), keep_fds=(lock,)
            )
            ended.append(status)
            print(
                f"[{i}/{len(experiments)}] {experiment.name}: {status.state}, {status.finished_runs} runs finished"
                + (f", {status.failed_runs} failed" if status.failed_runs else "")
                + f", {status.wall_seconds:.0f} s (log: {out / status.log})",
                flush=True,
            )
            write_page(out, args.quick, given)  # a page after every experiment: Ctrl-C loses nothing
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, wherever in the loop
        page, _ = write_page(out, args.quick, given)
        print(f"interrupted; the page shows what finished: {page}\nrun the same command again to go on")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    page, items = write_page(out, args.quick, given)
    print(f"\n{'experiment':28} verdict")
    for item in items:
        print(f"{item.name:28} {item.verdict}")
    print(f"\npage: {page}  ({time.monotonic() - start:.0f} s)")
    return 1 if any(s.state in (FAILED, INTERRUPTED) or s.failed_runs for s in ended) else 0


if __name__ == "__main__":
    sys.exit(main())
