"""Which job a sweep job dir holds, and who in a (possibly DDP) multirun may write sweep files.

Hydra names job dirs by job number and writes the new job's ``.hydra/overrides.yaml`` before the
task runs, so neither tells which job produced the files already in a re-used dir. Each job
therefore records its own overrides in ``job.json`` when it starts (and in ``results.json`` or
``failure.json`` at its end); a job dir is reused only when those equal the new job's overrides.
Anything else already in the dir is set aside under ``<sweep dir>/superseded/`` so that the dir
never mixes two jobs' files.

Each launch into a sweep dir writes ``launch.json`` there (its id) before any job starts, and each
job copies that id into its ``job.json``: the sweep's summaries read the jobs of the latest launch
only (:func:`launch_jobs`), never the leftovers of an earlier, larger grid in the same dir.
"""

import json
import os
import secrets
import shlex
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from dlfoundations.atomic import atomic_write_text
from dlfoundations.config.overrides import is_hydra_key, override_key, without_keys
from dlfoundations.config.schemas import root_keys
from dlfoundations.errors import UserError

# Overrides that change how a sweep is run, not what a job computes.
NOT_IDENTITY = root_keys(identity=False)
JOB_FILE, LAUNCH_FILE = "job.json", "launch.json"


def job_identity(overrides: Iterable[str]) -> list[str]:
    """The overrides that define what a job computes: without ``skip_finished`` and ``hydra.*``,
    sorted (Hydra applies value overrides of different keys independently of their order)."""
    return sorted(o for o in overrides if override_key(o) not in NOT_IDENTITY and not is_hydra_key(override_key(o)))


def current_job_identity() -> list[str] | None:
    """The running Hydra job's :func:`job_identity`; None outside Hydra (tests calling ``main``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return job_identity(HydraConfig.get().overrides.task)


def is_launching_process() -> bool:
    """False in the processes Lightning's DDP starts for ranks > 0 (it re-runs the script, and with
    it the whole multirun, with ``LOCAL_RANK``/``NODE_RANK`` set), and in torchrun/SLURM ranks > 0.
    Only the launching process may move, summarize or delete sweep files."""
    from lightning.pytorch.utilities import rank_zero_only

    env_ranks = (os.environ.get(name, "0") for name in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "RANK"))
    return all(rank in ("", "0") for rank in env_ranks) and getattr(rank_zero_only, "rank", 0) == 0


# A job that trained replicas (replicas=R) writes replicas.json in its dir, last, and each
# replica's results.json in its replica_<k>/ folder.
REPLICAS_FILE = "replicas.json"


def replica_dirs(job_dir: Path) -> list[Path]:
    """The ``replica_<k>`` folders of a finished replicated job (from its ``replicas.json``); []
    for a job that trained one model or has not finished."""
    path = Path(job_dir) / REPLICAS_FILE
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text()).get("replicas", [])
    except (OSError, ValueError):
        return []
    return [Path(job_dir) / entry["dir"] for entry in entries]


def read_record(path: Path) -> dict[str, Any]:
    """A JSON record a run wrote (results.json, ...) as a dict; one :class:`UserError` line naming
    the file where it is unreadable, not JSON, or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path} is unreadable ({type(err).__name__}: {str(err).splitlines()[0]})") from err
    if not isinstance(data, dict):
        raise UserError(f"{path} holds a {type(data).__name__}, not a JSON object")
    return data


def job_result(job_dir: Path) -> dict[str, Any] | None:
    """What a finished job wrote at its end: ``results.json``, or ``replicas.json`` for a
    replicated job (both hold ``overrides`` and ``optimized_value``); None if neither exists
    (a :class:`UserError` if it is corrupt)."""
    for name in ("results.json", REPLICAS_FILE):
        path = Path(job_dir) / name
        if path.exists():
            return read_record(path)
    return None


def recorded_identity(job_dir: Path) -> list[str] | None:
    """The overrides recorded by the run that wrote ``results.json`` (``replicas.json``,
    ``failure.json``, or ``job.json`` for a job that started and has not ended)."""
    for name in ("results.json", REPLICAS_FILE, "failure.json", JOB_FILE):
        path = Path(job_dir) / name
        if path.exists():
            try:
                overrides = read_record(path).get("overrides")
            except UserError:
                return None
            return job_identity(overrides) if overrides is not None else None
    return None


def start_launch(sweep_dir: Path) -> str:
    """Record a new launch into ``sweep_dir`` (before its jobs start); return its id."""
    launch = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{secrets.token_hex(4)}"
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(sweep_dir) / LAUNCH_FILE, json.dumps({"launch": launch}) + "\n")
    return launch


def current_launch(sweep_dir: Path) -> str | None:
    """The id of the latest launch into ``sweep_dir``; None if none recorded one."""
    try:
        return read_record(Path(sweep_dir) / LAUNCH_FILE).get("launch")
    except UserError:
        return None


def record_job(job_dir: Path, identity: list[str] | None) -> None:
    """``job.json``: this job's overrides and the launch it belongs to, written when it starts."""
    record = {"overrides": identity, "launch": current_launch(Path(job_dir).parent)}
    atomic_write_text(Path(job_dir) / JOB_FILE, json.dumps(record, indent=2) + "\n")


def launch_jobs(sweep_dir: Path, jobs: list[Path]) -> tuple[list[Path], list[Path]]:
    """``jobs`` split into those of the latest launch into ``sweep_dir`` and the others (left by
    an earlier launch). Without a recorded launch, or for a job that recorded none: all its own."""
    launch = current_launch(sweep_dir)
    mine: list[Path] = []
    others: list[Path] = []
    for job in jobs:
        try:
            recorded = read_record(job / JOB_FILE).get("launch") if (job / JOB_FILE).exists() else None
        except UserError:
            recorded = None
        (others if launch is not None and recorded is not None and recorded != launch else mine).append(job)
    return mine, others


def last_checkpoint(job_dir: Path) -> Path | None:
    """The job's own ``checkpoints/last.ckpt``, if it has one."""
    path = Path(job_dir) / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None


def sweep_resume_command(sweep_dir: str | Path) -> str:
    """The command that completes an interrupted sweep: this process's multirun command line with
    ``hydra.sweep.dir=<sweep_dir> skip_finished=true`` (finished jobs are kept, interrupted ones
    resume from their last.ckpt); a sentence saying so where this process is not the launcher."""
    args = sys.argv[1:]
    tail = [f"hydra.sweep.dir={sweep_dir}", "skip_finished=true"]
    if not {"-m", "--multirun"} & set(args):
        return f"the sweep's command with {' '.join(tail)}"
    kept = without_keys(args, ("hydra.sweep.dir", "skip_finished"))
    program = [sys.executable, sys.argv[0]] if sys.argv[0].endswith(".py") else [sys.argv[0]]
    return shlex.join([*program, *kept, *tail])


def finished_results(job_dir: Path, identity: list[str]) -> dict[str, Any] | None:
    """:func:`job_result` of ``job_dir`` if the run that wrote it had exactly these overrides."""
    if recorded_identity(job_dir) != identity:
        return None
    return job_result(job_dir)


def set_aside_previous(job_dir: Path, identity: list[str] | None) -> Path | None:
    """Move what an earlier job left in ``job_dir`` (all but ``.hydra`` and the open log files) to
    ``<sweep dir>/superseded/<job>_<time>_<id>/``; return that folder, or None if there was nothing."""
    job_dir = Path(job_dir)
    entries = [p for p in job_dir.iterdir() if p.name != ".hydra" and p.suffix != ".log"] if job_dir.is_dir() else []
    if not entries:
        return None
    previous = recorded_identity(job_dir)
    why = {
        "set_aside_from": str(job_dir),
        "these_files_are_of_overrides": previous if previous is not None else "unknown (not recorded)",
        "job_dir_now_runs": identity,
    }
    return set_aside(entries, job_dir.parent, job_dir.name, yaml.safe_dump(why, sort_keys=False))


def set_aside(paths: list[Path], sweep_dir: Path, label: str, why: str) -> Path:
    """Move ``paths`` to ``<sweep_dir>/superseded/<label>_<time>_<id>/`` with a ``why.txt``
    saying why (files of an earlier job or launch: kept, never mixed with the latest's); return
    that folder."""
    target = Path(sweep_dir) / "superseded" / f"{label}_{time.strftime('%Y-%m-%d_%H-%M-%S')}_{secrets.token_hex(3)}"
    target.mkdir(parents=True)
    for path in paths:
        os.replace(path, target / path.name)
    atomic_write_text(target / "why.txt", why)
    return target
