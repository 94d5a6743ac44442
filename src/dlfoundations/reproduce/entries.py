"""What the reproduction's page shows of each experiment, read from its records (sweep dir,
report, status file) only: its figures, its checks and one verdict. An experiment that did not run,
was interrupted or failed shows as such, never as a pass."""

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlfoundations.errors import UserError
from dlfoundations.record.collect import collect, config_value
from dlfoundations.reproduce.course import COURSE, GPU_SCALE, Experiment, GpuExperiment
from dlfoundations.reproduce.runner import (
    DONE,
    FAILED,
    INTERRUPTED,
    RUNNING,
    Status,
    overrides_of,
    ran_quick,
    read_status,
    sweep_dir,
)
from dlfoundations.results.aggregate import load_rows
from dlfoundations.results.checks import build_report, find_reference

PASSED, OUT, NOT_DONE, INFO = "pass", "fail", "missing", "info"  # verdict classes (colours on the page)


@dataclass
class Entry:
    """One experiment of the page."""

    name: str
    title: str
    command: str
    verdict: str
    kind: str  # PASSED, OUT, NOT_DONE or INFO
    directory: Path | None = None
    status: Status | None = None
    report: dict[str, Any] | None = None
    figures: list[Path] = field(default_factory=list)
    failed_runs: list[dict[str, str]] = field(default_factory=list)
    finished_runs: int = 0
    gpu: bool = False
    note: str = ""
    report_error: str = ""  # why the reference could not be checked
    quick: bool = False  # its runs are --quick ones (as its status file records)


def _figures(directory: Path, patterns: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        for match in sorted(glob.glob(str(directory / pattern))):
            if Path(match) not in found:
                found.append(Path(match))
    return found


def _report(entry: Entry, directory: Path) -> None:
    """The report of a dir with finished runs and a reference block; a reference that cannot be
    checked (e.g. a curve without a tolerance) is said on the page, never taken for no reference."""
    if find_reference(directory) is None:
        return
    try:
        entry.report = build_report(directory)
    except UserError as err:
        entry.report_error = str(err)


def _checks_verdict(entry: Entry, no_reference: str) -> tuple[str, str]:
    """The verdict of an entry with finished runs from its reference checks, or why it has none."""
    if entry.report_error:
        return f"its reference cannot be checked: {entry.report_error}", OUT
    if entry.report is None:
        return no_reference, INFO
    return check_verdict(entry.report)


def check_verdict(report: dict[str, Any]) -> tuple[str, str]:
    """The verdict of a report's checks: reproduced only when every measured check is within
    tolerance and there is at least one."""
    total = report["passed"] + report["out_of_tolerance"]
    # Checks of the reference that this sweep does not cover (another sweep's, e.g. a label-noise
    # sweep's in a single run, or grid points a quick run leaves out): said, never counted as passes.
    missing = (
        f"; {report['not_measured']} of the reference's checks not measured here" if report["not_measured"] else ""
    )
    if report["out_of_tolerance"]:
        return f"{report['out_of_tolerance']} of {total} checks out of tolerance{missing}", OUT
    if not total:
        return "nothing measured that the reference covers", NOT_DONE
    return f"reproduced: {report['passed']} of {total} checks within tolerance{missing}", PASSED


def course_entry(experiment: Experiment, out: Path, quick: bool) -> Entry:
    """An experiment of the course as its records show it; its command is the one that ran (the
    ``--quick`` one where the status file says so), else the one ``quick`` would run."""
    directory = sweep_dir(out, experiment.name)
    status = read_status(out, experiment.name)
    ran = ran_quick(status, experiment)
    command = "python src/train.py -m " + " ".join(overrides_of(experiment, ran or (status is None and quick)))
    entry = Entry(experiment.name, experiment.title, command, "not run", NOT_DONE, directory, status, quick=ran)
    entry.note = experiment.note
    if directory.exists():
        rows, failed = collect(directory)
        entry.finished_runs = len(rows)
        entry.failed_runs = failed
        entry.figures = _figures(directory, experiment.figures)
        if rows:
            _report(entry, directory)
    entry.verdict, entry.kind = _verdict(entry, status)
    return entry


def _verdict(entry: Entry, status: Status | None) -> tuple[str, str]:
    expected = status.expected_runs if status else None
    of = f" of {expected}" if expected else ""
    if status is None and entry.finished_runs == 0:
        return ("not run" if not entry.failed_runs else "interrupted: no run finished"), NOT_DONE
    if status is not None and status.state == RUNNING:
        return f"running, or stopped without recording its end: {entry.finished_runs}{of} runs finished", NOT_DONE
    if status is None or status.state == INTERRUPTED:
        return f"interrupted: {entry.finished_runs}{of} runs finished", NOT_DONE
    if status.state == FAILED and entry.finished_runs == 0:
        return f"failed (exit code {status.exit_code}, see the log)", OUT
    if entry.finished_runs == 0:
        return "no run finished", OUT
    verdict, kind = _checks_verdict(entry, "finished; its experiment publishes no numbers to check")
    problems = []
    if entry.failed_runs:
        problems.append(f"{len(entry.failed_runs)} runs failed")
    if expected and entry.finished_runs < expected:
        problems.append(f"only {entry.finished_runs}{of} runs finished")
    if status.state != DONE:
        problems.append(f"the command ended with exit code {status.exit_code}")
    if problems:
        return f"{verdict}; " + "; ".join(problems), OUT
    return verdict, kind


def gpu_entry(experiment: GpuExperiment, given: Path | None) -> Entry:
    if given is None:
        return Entry(experiment.name, experiment.title, experiment.command, f"needs {experiment.needs}", INFO, gpu=True)
    entry = Entry(experiment.name, experiment.title, experiment.command, "", NOT_DONE, given, gpu=True)
    try:
        rows, failed = load_rows(given)  # a sweep dir, or a single run's dir
    except UserError as err:
        entry.verdict, entry.kind = str(err), OUT
        return entry
    entry.finished_runs, entry.failed_runs = len(rows), failed
    entry.figures = _figures(given, experiment.figures)
    if rows:
        _report(entry, given)
    if not rows:
        entry.verdict, entry.kind = f"no finished run in {given}", OUT
    else:
        entry.verdict, entry.kind = _checks_verdict(entry, "finished; no reference block to check")
        if failed:  # said whatever the checks say
            entry.verdict, entry.kind = f"{entry.verdict}; {len(failed)} runs failed", OUT
    return entry


def experiment_of(directory: Path) -> set[str]:
    """Which experiment a run dir (or a sweep dir's first job) is of: the ``experiment=`` it was
    run with (Hydra's record of its choices) and its ``task_name``; empty where neither is told."""
    jobs = [directory] + sorted((p.parent.parent for p in directory.glob("*/.hydra/config.yaml")), key=str)
    for job in jobs:
        if not (job / ".hydra" / "config.yaml").exists():
            continue
        names = {str(config_value(job, "task_name") or "")}
        hydra_yaml = job / ".hydra" / "hydra.yaml"
        if hydra_yaml.exists():
            runtime = ((yaml.safe_load(hydra_yaml.read_text()) or {}).get("hydra") or {}).get("runtime") or {}
            names.add(str((runtime.get("choices") or {}).get("experiment") or ""))
        return names - {""}
    return set()


def _unreadable(name: str, title: str, command: str, err: Exception) -> Entry:
    """An experiment whose records cannot be read (a damaged yaml or json): said on its row, the
    rest of the page still written."""
    reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
    return Entry(name, title, command, f"its records cannot be read ({reason})", OUT)


def entries(out: Path, quick: bool, given: dict[str, Path] | None = None) -> list[Entry]:
    given = given or {}
    items = []
    for e in COURSE:
        try:
            items.append(course_entry(e, out, quick))
        except Exception as err:  # whatever is damaged, the page names it and goes on
            items.append(_unreadable(e.name, e.title, e.command(), err))
    for g in GPU_SCALE:
        try:
            items.append(gpu_entry(g, given.get(g.name)))
        except Exception as err:
            items.append(_unreadable(g.name, g.title, g.command, err))
    return items
