"""The study's table for an Optuna sweep (``hparams_search=...``): ``optuna_trials.csv`` in the sweep dir.

The Optuna sweeper writes only the best trial (``optimization_results.yaml``). Each trial is a job
dir of the sweep, so the table is read from there: state (COMPLETE, or FAIL with the job's error),
the searched parameters, and the value the trial returned (``optimized_value`` of results.json).
"""

import logging
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dlfoundations.atomic import atomic_write_csv
from dlfoundations.config.overrides import override_values
from dlfoundations.record.collect import collect
from dlfoundations.record.jobs import read_record

log = logging.getLogger(__name__)


def trials_table(sweep_dir: str | Path, params: list[str]) -> list[dict[str, Any]]:
    """One row per trial (job), in job order: ``trial``, ``state``, each of ``params``, ``value``, ``error``."""
    sweep_dir = Path(sweep_dir)
    rows, failed = collect(sweep_dir)
    table = []
    for row in rows:
        results = read_record(sweep_dir / row["job"] / "results.json")  # collect() read it already
        table.append(
            {
                "trial": row["job"],
                "state": "COMPLETE",
                **{p: row.get(p) for p in params},
                "value": results.get("optimized_value"),
                "error": "",
            }
        )
    for fail in failed:
        overrides = override_values(fail["overrides"].split())
        table.append(
            {
                "trial": fail["job"],
                "state": "FAIL",
                **{p: overrides.get(p) for p in params},
                "value": None,
                "error": fail["error"],
            }
        )
    return sorted(table, key=lambda r: int(r["trial"]) if str(r["trial"]).isdigit() else 0)


class OptunaSummary(Callback):
    """Hydra callback: at the end of an Optuna multirun, write ``optuna_trials.csv`` and log the best trial."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        # The searched parameters: the sweeper's search space and whatever differs between trials.
        searched = [k for k, v in (config.hydra.sweeper.get("params") or {}).items() if "," in str(v) or "(" in str(v)]
        rows, failed = collect(sweep_dir)
        values: dict[str, set] = {}
        for overrides in [r["overrides"].split() for r in failed] + [[f"{k}={v}" for k, v in r.items()] for r in rows]:
            for key, value in override_values(overrides).items():
                values.setdefault(key, set()).add(value)
        varying = [k for k, v in values.items() if len(v) > 1 and k != "job" and "/" not in k and k != "num_params"]
        params = list(dict.fromkeys(searched + varying))
        table = trials_table(sweep_dir, params)
        atomic_write_csv(sweep_dir / "optuna_trials.csv", table, ["trial", "state", *params, "value", "error"])
        best = sweep_dir / "optimization_results.yaml"
        if best.exists():
            result = yaml.safe_load(best.read_text())
            log.info(
                "optuna: best value %s with %s (%d trials, %d failed) -> %s",
                result.get("best_value"),
                result.get("best_params"),
                len(table),
                sum(r["state"] == "FAIL" for r in table),
                sweep_dir / "optuna_trials.csv",
            )
