"""Which job a sweep job dir holds, and who in a (possibly DDP) multirun may write sweep files.

Hydra names job dirs by job number and writes the new job's ``.hydra/overrides.yaml`` before the
task runs, so neither tells which job produced the files already in a re-used dir. Each run
therefore records its own overrides in ``results.json`` (and ``failure.json``); a job dir is
reused only when those equal the new job's overrides. Anything else already in the dir is set
aside under ``<sweep dir>/superseded/`` so that the dir never mixes two jobs' files.
"""

import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from dlfoundations.atomic import atomic_write_text

# Overrides that change how a sweep is run, not what a job computes.
NOT_IDENTITY = ("skip_finished",)


def override_key(override: str) -> str:
    """``+model.width=4`` -> ``model.width``."""
    return override.split("=", 1)[0].lstrip("+~")


def job_identity(overrides: Iterable[str]) -> list[str]:
    """The overrides that define what a job computes: without ``skip_finished`` and ``hydra.*``,
    sorted (Hydra applies value overrides of different keys independently of their order)."""
    return sorted(
        o
        for o in overrides
        if override_key(o) not in NOT_IDENTITY
        and not override_key(o).startswith(("hydra.", "hydra/"))
        and override_key(o) != "hydra"
    )


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


def job_result(job_dir: Path) -> dict[str, Any] | None:
    """What a finished job wrote at its end: ``results.json``, or ``replicas.json`` for a
    replicated job (both hold ``overrides`` and ``optimized_value``); None if neither exists."""
    for name in ("results.json", REPLICAS_FILE):
        path = Path(job_dir) / name
        if path.exists():
            return json.loads(path.read_text())
    return None


def recorded_identity(job_dir: Path) -> list[str] | None:
    """The overrides recorded by the run that wrote ``results.json`` (``replicas.json``, or
    ``failure.json``)."""
    for name in ("results.json", REPLICAS_FILE, "failure.json"):
        path = job_dir / name
        if path.exists():
            try:
                overrides = json.loads(path.read_text()).get("overrides")
            except (OSError, ValueError):
                return None
            return job_identity(overrides) if overrides is not None else None
    return None


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
    target = (
        job_dir.parent / "superseded" / f"{job_dir.name}_{time.strftime('%Y-%m-%d_%H-%M-%S')}_{secrets.token_hex(3)}"
    )
    target.mkdir(parents=True)
    for entry in entries:
        os.replace(entry, target / entry.name)
    atomic_write_text(
        target / "why.txt",
        yaml.safe_dump(
            {
                "set_aside_from": str(job_dir),
                "these_files_are_of_overrides": previous if previous is not None else "unknown (not recorded)",
                "job_dir_now_runs": identity,
            },
            sort_keys=False,
        ),
    )
    return target
