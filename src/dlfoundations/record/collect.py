"""The records of a sweep dir, read: which job folders belong to its latest launch, which
finished, and their rows (overrides, parameter count, metrics, ``*/err = 1 - */acc``).

A job is a folder with ``.hydra/overrides.yaml``. It finished when it has ``results.json``
(written atomically at its end) recorded for the job's own overrides; a job that trained replicas
(``replicas=R``) stands for its ``replica_<k>/`` folders, each one run of its own seed with its own
``.hydra/overrides.yaml`` and ``results.json`` (row ``job``: ``<job>/replica_<k>``); otherwise it failed
(``failure.json`` says why) or is still running. Every module that reads a sweep reads it here.
"""

import logging
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from dlfoundations.config.overrides import override_values
from dlfoundations.errors import UserError
from dlfoundations.record.jobs import job_identity, launch_jobs, read_record, recorded_identity, replica_dirs

log = logging.getLogger(__name__)
NOT_METRICS = ("job", "num_params")
NO_RESULTS = "no results.json: the job crashed without a trace, was interrupted or is still running"


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """The sweep's runs in job order: the job folders of its latest launch (:func:`launch_jobs`),
    a replicated job's replica folders in its place."""
    jobs = (p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml"))
    ordered = sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else p.name))
    mine, _ = launch_jobs(Path(sweep_dir), ordered)
    return [run for job in mine for run in (replica_dirs(job) or [job])]


def earlier_jobs(sweep_dir: str | Path) -> list[str]:
    """Names of the job folders an earlier launch left in the sweep dir (not summarized)."""
    jobs = sorted(p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml"))
    return [p.name for p in launch_jobs(Path(sweep_dir), jobs)[1]]


def collect(sweep_dir: str | Path, keys: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Rows of finished jobs (overrides, num_params, metrics, ``*/err`` = 1 - ``*/acc``) and the
    failed/unfinished jobs with their error, both sorted by job number. ``keys`` that a job did not
    override are read from the config its run saved, so every row says what its value was."""
    rows, failed = [], []
    seen: dict[tuple[str, ...], str] = {}
    for job in job_dirs(sweep_dir):
        name = job.relative_to(sweep_dir).as_posix()
        overrides = read_overrides(job)
        results = job / "results.json"
        recorded = recorded_identity(job)
        if results.exists() and recorded is not None and recorded != job_identity(overrides):
            # A re-launch with other overrides reuses job numbers; never show one job's numbers
            # under another job's overrides.
            failed.append(
                {
                    "job": name,
                    "overrides": " ".join(overrides),
                    "error": f"results.json is of other overrides ({' '.join(recorded)}): "
                    "not finished with these; re-launch with skip_finished=true",
                }
            )
            continue
        if not results.exists():
            failure = job / "failure.json"
            try:
                error = read_record(failure).get("error", "?") if failure.exists() else NO_RESULTS
            except UserError as err:
                error = f"{NO_RESULTS}; {err}"
            failed.append({"job": name, "overrides": " ".join(overrides), "error": error})
            continue
        try:
            data = read_record(results)
        except UserError as err:  # one broken job: listed as failed, the others summarized
            failed.append({"job": name, "overrides": " ".join(overrides), "error": str(err)})
            continue
        run = tuple(job_identity(overrides))
        if run in seen:  # replicas=2 seed=0,1: seed 1 trained by both jobs is one run
            log.warning("sweep summary: %s is the same run as %s (same overrides); counted once", name, seen[run])
            continue
        seen[run] = name
        params: dict[str, Any] = dict(override_values(overrides))
        for key in keys:
            if key and key not in params and key not in NOT_METRICS:
                value = config_value(job, key)
                if value is not None:
                    params[key] = value
        metrics = with_errors(dict(data.get("metrics", {})))
        rows.append({"job": name, **params, "num_params": data.get("num_params"), **metrics})
    return rows, failed


def with_errors(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with ``<set>/err = 1 - <set>/acc`` added for every accuracy (the one place the
    project derives an error rate)."""
    return {**metrics, **{k[:-4] + "/err": 1.0 - v for k, v in metrics.items() if k.endswith("/acc")}}


def read_overrides(job_dir: str | Path) -> list[str]:
    """The job's command-line overrides (Hydra's ``.hydra/overrides.yaml``); [] where it has none."""
    path = Path(job_dir) / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.exists() else []


def read_history(job_dir: str | Path) -> list[dict[str, float]]:
    """A job's evaluations (``eval_history.json``), one dict per evaluated epoch, with
    :func:`with_errors`; [] for a job without one."""
    path = Path(job_dir) / "eval_history.json"
    if not path.exists():
        return []
    return [with_errors(entry) for entry in read_record(path).get("history", [])]


def to_float(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a number (category labels, empty cells)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@lru_cache(maxsize=4096)
def _job_config(config_path: str, mtime: float) -> dict:
    return yaml.safe_load(Path(config_path).read_text()) or {}


def config_value(job_dir: str | Path, key: str) -> Any:
    """The value of dotted ``key`` in the config the job's run used: the resolved ``config.yaml``
    every run writes, else Hydra's composed ``.hydra/config.yaml``; None if absent."""
    path = Path(job_dir) / "config.yaml"
    if not path.exists():
        path = Path(job_dir) / ".hydra" / "config.yaml"
    if not path.exists():
        return None
    node: Any = _job_config(str(path), path.stat().st_mtime)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
