"""Sweep dirs as Hydra and dlfoundations leave them, with results chosen by the test."""

import json
from pathlib import Path
from typing import Any

import yaml


def write_job(
    job: Path,
    overrides: dict[str, Any],
    metrics: dict[str, float],
    num_params: int,
    config: dict | None = None,
    history: list[dict] | None = None,
) -> Path:
    """One finished job: .hydra/overrides.yaml, .hydra/config.yaml (``config`` with the overrides
    applied), results.json and, if given, eval_history.json."""
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"{k}={v}" for k, v in overrides.items()]))
    composed = json.loads(json.dumps(config or {}))
    for key, value in overrides.items():
        node = composed
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        if not (leaf in node and isinstance(node[leaf], dict)):  # a group choice (model=mlp) is no value
            node[leaf] = value
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(composed))
    (job / "results.json").write_text(json.dumps({"metrics": metrics, "num_params": num_params}))
    if history is not None:
        (job / "eval_history.json").write_text(json.dumps({"history": history}))
    return job


def make_sweep(
    root: Path,
    jobs: list[tuple[dict, dict, int]],
    config: dict | None = None,
    histories: list[list[dict]] | None = None,
) -> Path:
    """Jobs 0..n-1 from (overrides, metrics, num_params) triples."""
    for i, (overrides, metrics, params) in enumerate(jobs):
        write_job(root / str(i), overrides, metrics, params, config, histories[i] if histories else None)
    return root
