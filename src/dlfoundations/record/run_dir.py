"""A run dir, written: its config, its results (one per replica of a replicated job), its failure.

Every file a run leaves for the sweep summaries, ``skip_finished`` and ``eval.py`` is written here,
atomically; dlfoundations.record.jobs and .collect read them back.
"""

import io
import logging
import traceback
from pathlib import Path
from typing import Any

import rich.console
import yaml
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from dlfoundations.atomic import atomic_write_json, atomic_write_text
from dlfoundations.config.checks import config_tree
from dlfoundations.config.overrides import without_keys
from dlfoundations.record.jobs import REPLICAS_FILE, current_job_identity
from dlfoundations.replicas.training import replica_prefix, split_by_replica

log = logging.getLogger(__name__)


@rank_zero_only
def save_config(cfg: DictConfig, output_dir: Path) -> None:
    atomic_write_text(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    # With its interpolations: what python src/eval.py rebuilds the run from (overrides then propagate).
    atomic_write_text(output_dir / "config_unresolved.yaml", OmegaConf.to_yaml(cfg))
    buffer = io.StringIO()
    rich.console.Console(file=buffer, width=110, color_system=None).print(config_tree(cfg))
    atomic_write_text(output_dir / "config_tree.log", buffer.getvalue())


def write_results(output_dir: Path, results: dict[str, Any]) -> None:
    """``results.json``, the run's end: what summaries and ``skip_finished`` read."""
    atomic_write_json(output_dir / "results.json", results)


def record_failure(output_dir: Path, err: BaseException) -> None:
    """``failure.json`` in the run dir: what went wrong, for the sweep summary and for humans."""
    try:
        write_failure(
            output_dir,
            f"{type(err).__name__}: {err}".splitlines()[0],
            current_job_identity(),
            "".join(traceback.format_exception(err)),
        )
    except OSError:
        log.exception("could not write failure.json")


def write_failure(output_dir: Path, error: str, overrides: list[str] | None, trace: str = "") -> None:
    atomic_write_json(output_dir / "failure.json", {"error": error, "traceback": trace, "overrides": overrides})


def replica_overrides(overrides: list[str] | None, seed: int, width: int | None = None) -> list[str]:
    """A replica's overrides: the job's, with ``seed=<its seed>`` and, for a member of a pack of
    widths, ``model.width=<its width>`` instead of ``pack_widths`` (what its separate run is)."""
    if width is None:
        return sorted([*without_keys(overrides or [], ["seed"]), f"seed={seed}"])
    kept = without_keys(overrides or [], ["seed", "model.width", "pack_widths"])
    return sorted([*kept, f"seed={seed}", f"model.width={width}"])


def write_replica_results(
    output_dir: Path,
    results: dict[str, Any],
    configs: list[DictConfig],
    identity: list[str] | None,
    num_params: list[int] | None = None,
    pack: bool = False,
    failed: dict[int, str] | None = None,
) -> dict[str, Any]:
    """``replica_<k>/results.json`` (a single run's schema: its own seed, width, parameter count
    ``num_params[k]`` and metrics), its ``config.yaml`` and ``.hydra/overrides.yaml`` (the separate
    run it equals, so sweep summaries read it as one more run; ``pack``: the members differ in
    ``model.width`` too), then ``replicas.json`` in the run dir, written last. Returns that.
    A replica in ``failed`` (index -> error, e.g. it diverged) gets ``failure.json`` instead of
    ``results.json``, as its separate run would: summaries list it as failed."""
    per_replica = split_by_replica(results["metrics"])
    name = results.get("optimized_metric")
    entries = []
    for k, replica_cfg in enumerate(configs):
        folder = output_dir / replica_prefix(k).rstrip("/")
        metrics = per_replica.get(k, {})
        width = replica_cfg.model.get("width") if pack else None
        overrides = replica_overrides(identity, int(replica_cfg.seed), width)
        atomic_write_text(folder / ".hydra" / "overrides.yaml", yaml.safe_dump(overrides))
        atomic_write_text(folder / "config.yaml", OmegaConf.to_yaml(replica_cfg, resolve=True))
        if failed and k in failed:
            (folder / "results.json").unlink(missing_ok=True)
            write_failure(folder, f"UserError: {failed[k]}", overrides)
            entries.append(
                {
                    "dir": folder.name,
                    "seed": int(replica_cfg.seed),
                    "width": replica_cfg.model.get("width"),
                    "optimized_value": None,
                    "failed": failed[k],
                }
            )
            continue
        (folder / "failure.json").unlink(missing_ok=True)
        replica_results = {
            **results,
            "metrics": metrics,
            "optimized_value": metrics.get(name) if name else None,
            "seed": int(replica_cfg.seed),
            "width": replica_cfg.model.get("width"),
            "num_params": num_params[k] if num_params else results.get("num_params"),
            "overrides": overrides,
            "nonfinite_metrics": [
                m.removeprefix(replica_prefix(k))
                for m in results["nonfinite_metrics"]
                if m.startswith(replica_prefix(k))
            ],
            # fit_seconds (and epochs, global_step) are those of the job that trained all replicas.
            "replica": {"index": k, "of": len(configs)},
        }
        atomic_write_json(folder / "results.json", replica_results)
        entries.append(
            {
                "dir": folder.name,
                "seed": int(replica_cfg.seed),
                "width": replica_results["width"],
                "optimized_value": replica_results["optimized_value"],
            }
        )
    values = [e["optimized_value"] for e in entries if e["optimized_value"] is not None]
    summary = {
        "replicas": entries,
        "overrides": identity,
        "optimized_metric": name,
        # What a Hydra sweeper (Optuna) gets for the job: the mean over its replicas.
        "optimized_value": sum(values) / len(values) if len(values) == len(entries) and values else None,
        "fit_seconds": results["fit_seconds"],
    }
    atomic_write_json(output_dir / REPLICAS_FILE, summary)
    return summary
