"""Run the course's experiments one after another, each a sweep into ``<out>/runs/<name>``.

Each experiment is ``python -m dlfoundations.run.train -m <overrides> hydra.sweep.dir=<out>/runs/<name>
skip_finished=true`` in a child process (its output in ``<out>/logs/<name>.log``), so a second
``make reproduce`` after Ctrl-C re-runs only the runs that have no results (an interrupted job
resumes from its own last checkpoint). ``<out>/status/<name>.json`` records how each experiment
ended (its command, exit code, wall time summed over attempts); an experiment whose same command
ended with every run finished is not started again (one with failed or missing runs is, and runs
only those).
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from dlfoundations.atomic import atomic_write_json
from dlfoundations.config.overrides import override_key
from dlfoundations.record.collect import NO_RESULTS, collect
from dlfoundations.record.jobs import read_record
from dlfoundations.reproduce.course import Experiment

DONE, INTERRUPTED, FAILED, RUNNING = "done", "interrupted", "failed", "running"
POLL_SECONDS = 5.0


class Terminated(KeyboardInterrupt):
    """A SIGTERM to ``make reproduce``: handled like Ctrl-C, but the child, which did not get the
    signal (Ctrl-C reaches the whole process group, a SIGTERM only its target), is sent a SIGINT."""


@dataclass
class Status:
    """How an experiment of the reproduction ended (``<out>/status/<name>.json``)."""

    name: str
    command: list[str]
    state: str = ""  # running | done | interrupted | failed
    exit_code: int | None = None
    wall_seconds: float = 0.0  # summed over attempts
    attempts: int = 0
    expected_runs: int | None = None
    finished_runs: int = 0
    failed_runs: int = 0
    log: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)


def sweep_dir(out: Path, name: str) -> Path:
    return out / "runs" / name


def status_path(out: Path, name: str) -> Path:
    return out / "status" / f"{name}.json"


def read_status(out: Path, name: str) -> Status | None:
    path = status_path(out, name)
    if not path.exists():
        return None
    try:
        return Status(**read_record(path))
    except Exception:  # a damaged status file: the experiment runs again (its finished runs are kept)
        return None


def merged(overrides: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``overrides`` with ``extra`` applied: an extra override replaces the one of its key."""
    replaced = {override_key(o) for o in extra}
    return [o for o in overrides if override_key(o) not in replaced] + list(extra)


def overrides_of(experiment: Experiment, quick: bool) -> list[str]:
    return merged(experiment.overrides, experiment.quick) if quick else list(experiment.overrides)


def train_command(experiment: Experiment, out: Path, quick: bool) -> list[str]:
    """The child process's command line (the launcher and record settings last)."""
    return [
        sys.executable,
        "-m",
        "dlfoundations.run.train",
        "-m",
        *overrides_of(experiment, quick),
        f"hydra.sweep.dir={sweep_dir(out, experiment.name).resolve()}",
        "skip_finished=true",
    ]


def expected_runs(overrides: Sequence[str]) -> int | None:
    """How many runs the multirun of ``overrides`` has: the product of its sweep values, those of
    the command line over the experiment's ``hydra.sweeper.params``. None where it cannot be told."""
    from hydra import compose, initialize_config_module
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(list(overrides))
        # A key the command line sets to one value is not swept, whatever the yaml's sweeper says
        # (Hydra's sweeper lets the command line win): it counts once.
        counts = {
            o.get_key_element(): len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1 for o in parsed
        }
        fixed = [text for text, o in zip(overrides, parsed, strict=True) if not o.is_sweep_override()]
        with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
            cfg = compose("train", overrides=fixed, return_hydra_config=True)
        for key, values in (cfg.hydra.sweeper.get("params") or {}).items():
            if key not in counts:
                (override,) = parser.parse_overrides([f"{key}={values}"])
                counts[key] = len(list(override.sweep_string_iterator())) if override.is_sweep_override() else 1
    except Exception:  # the child reports a bad override itself, in one line
        return None
    # A job of replicas=R trains R runs (R seeds); a pack_widths job its widths x R.
    total = int(cfg.get("replicas") or 1) * max(1, len(cfg.get("pack_widths") or []))
    for count in counts.values():
        total *= count
    return total


def _progress_line(name: str, finished: int, failed: int, expected: int | None, elapsed: float) -> str:
    of = f"/{expected}" if expected else ""
    bad = f", {failed} failed" if failed else ""
    return f"  {name}: {finished}{of} runs finished{bad}, {_clock(elapsed)} elapsed"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def _counts(directory: Path, running: bool = False) -> tuple[int, int]:
    """(finished, failed) runs of the sweep dir, as its summary counts them. While the sweep
    runs (``running``), a job without results.json may be one still training: not counted failed."""
    if not directory.exists():
        return 0, 0
    try:
        rows, failed = collect(directory)
    except Exception:  # a job writing its files right now: counted at the next poll
        return -1, -1
    if running:
        failed = [f for f in failed if NO_RESULTS not in f.get("error", "")]
    return len(rows), len(failed)


def run_experiment(
    experiment: Experiment,
    out: Path,
    quick: bool,
    say: Callable[[str], None] = print,
    keep_fds: Sequence[int] = (),
) -> Status:
    """Run one experiment (resuming what an earlier attempt left); returns its status. Ctrl-C
    stops the child (it writes the summary of its finished runs), records the experiment as
    interrupted and raises KeyboardInterrupt. ``keep_fds``: open files the child inherits (the
    out dir's lock)."""
    directory = sweep_dir(out, experiment.name)
    command = train_command(experiment, out, quick)
    earlier = read_status(out, experiment.name)
    status = earlier if earlier is not None and earlier.command == command else Status(experiment.name, command)
    status.expected_runs = expected_runs(overrides_of(experiment, quick))
    log_path = out / "logs" / f"{experiment.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    status.log = str(log_path.relative_to(out))
    status.state = RUNNING  # until the child ends (a page written meanwhile says so)
    atomic_write_json(status_path(out, status.name), asdict(status))
    start = time.monotonic()
    with log_path.open("a") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)}\n")
        log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, pass_fds=tuple(keep_fds))
        shown = (-2, -2)
        try:
            while True:
                try:
                    child.wait(timeout=POLL_SECONDS)  # returns as soon as the child ends
                    break
                except subprocess.TimeoutExpired:
                    pass
                counts = _counts(directory, running=True)
                if counts != shown and counts[0] >= 0:
                    shown = counts
                    say(_progress_line(experiment.name, *counts, status.expected_runs, time.monotonic() - start))
        except KeyboardInterrupt as stop:
            # Ctrl-C: the child got the same SIGINT (one process group); it stops its runs and
            # summarizes. A SIGTERM reached only this process: the child is asked the same way.
            if isinstance(stop, Terminated) and child.poll() is None:
                child.send_signal(signal.SIGINT)
            _wait(child)
            _record(status, out, _counts(directory), INTERRUPTED, child.returncode, time.monotonic() - start)
            raise
    code = child.returncode
    # Exit 0: every run finished; 1 with failed runs on record: the sweep ended and its summary
    # names them. Any other 1 is a crash (a traceback exits 1 too); other codes: the command itself
    # failed (a bad override) or was stopped by a signal.
    counts = _counts(directory)
    state = DONE if code == 0 or (code == 1 and counts[1] > 0) else INTERRUPTED if code in (130, -2) else FAILED
    return _record(status, out, counts, state, code, time.monotonic() - start)


def complete(status: Status | None, experiment: Experiment, out: Path, quick: bool) -> TypeGuard[Status]:
    """Whether an earlier attempt of this experiment's command ended with every run finished, as
    its sweep dir shows now (not as the status file remembers: the dir may have been deleted or
    the yaml's grid changed since): only then is it kept; otherwise running it again
    (skip_finished) runs what is missing or failed."""
    if status is None or status.state != DONE or status.command != train_command(experiment, out, quick):
        return False
    finished, failed = _counts(sweep_dir(out, experiment.name))
    expected = expected_runs(overrides_of(experiment, quick))
    return finished > 0 and failed == 0 and (expected is None or finished >= expected)


def ran_quick(status: Status | None, experiment: Experiment) -> bool:
    """Whether the status's command is the experiment's ``--quick`` one (read from the record, so
    a page rebuilt without ``--quick`` still says what ran)."""
    quick = overrides_of(experiment, quick=True)
    return status is not None and quick != list(experiment.overrides) and status.command[4:-2] == quick


def _wait(child: subprocess.Popen) -> None:
    try:
        child.wait(timeout=120)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        child.kill()
        child.wait()


def _record(status: Status, out: Path, counts: tuple[int, int], state: str, code: int | None, seconds: float) -> Status:
    finished, failed = counts  # _counts of the sweep dir once the child has ended
    status.state, status.exit_code = state, code
    status.wall_seconds = round(status.wall_seconds + seconds, 1)
    status.attempts += 1
    status.finished_runs, status.failed_runs = max(finished, 0), max(failed, 0)
    status.history.append(
        {"ended": time.strftime("%Y-%m-%d %H:%M:%S"), "state": state, "exit_code": code, "seconds": round(seconds, 1)}
    )
    atomic_write_json(status_path(out, status.name), asdict(status))
    return status
