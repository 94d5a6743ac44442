"""Collect every job of a Hydra sweep dir into ``summary.csv`` and ``summary.png``.

A job is a folder with ``.hydra/overrides.yaml``. It finished when it has ``results.json``
(written atomically at its end); otherwise it failed (``failure.json`` says why) or is still
running. Summaries are written for whatever finished, and name the rest.
"""

import csv
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dlfoundations.io import atomic_write, atomic_write_text

log = logging.getLogger(__name__)


def collect(sweep_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Rows of finished jobs (overrides, num_params, metrics, ``*/err`` = 1 - ``*/acc``) and the
    failed/unfinished jobs with their error, both sorted by job number."""
    rows, failed = [], []
    jobs = sorted((p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml")),
                  key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else p.name))
    for job in jobs:
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
        params = dict(o.split("=", 1) for o in overrides if "=" in o)
        results = job / "results.json"
        if results.exists():
            data = json.loads(results.read_text())
            metrics = dict(data.get("metrics", {}))
            metrics.update({k[:-4] + "/err": 1.0 - v for k, v in data.get("metrics", {}).items() if k.endswith("/acc")})
            rows.append({"job": job.name, **params, "num_params": data.get("num_params"), **metrics})
        else:
            failure = job / "failure.json"
            error = json.loads(failure.read_text()).get("error", "?") if failure.exists() else \
                "no results.json: the job crashed without a trace or is still running"
            failed.append({"job": job.name, "overrides": " ".join(overrides), "error": error})
    return rows, failed


def _to_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def write_summary(sweep_dir: str | Path, x: str = "num_params", y: list[str] | None = None,
                  labels: list[str] | None = None, logx: bool = True, title: str | None = None,
                  xlabel: str | None = None, ylabel: str | None = None, group_by: str | None = None,
                  logy: bool = False, replicate_keys: list[str] | None = None, band: str = "std",
                  epsilon: float = 0.01, threshold_x: str = "model.width") -> dict[str, Any]:
    """Write ``summary.csv``, ``summary.png`` and ``failed.txt`` (if any job failed) into the sweep
    dir; one curve per ``y`` metric (and per value of the ``group_by`` override, if given).
    Jobs differing only in ``replicate_keys`` (default: seed) are one point with a ``band``
    (std | ci95 | none); see :mod:`dlfoundations.sweeps.analysis` for summary_agg.csv, the
    interpolation threshold (train error <= ``epsilon``), heatmaps and the reproduction report."""
    from dlfoundations.sweeps.analysis import analyse_sweep, finish_sweep

    sweep_dir = Path(sweep_dir)
    rows, failed = collect(sweep_dir)
    y = list(y or ["test/err", "train_eval/err"])
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(sweep_dir / "summary.csv", buffer.getvalue())
    if failed:
        atomic_write_text(sweep_dir / "failed.txt", "".join(f"job {f['job']} ({f['overrides']}): {f['error']}\n" for f in failed))
        for f in failed:
            log.warning("sweep job %s (%s) failed: %s", f["job"], f["overrides"], f["error"])
    analysis = analyse_sweep(sweep_dir, rows, replicate_keys or ["seed"], threshold_x, epsilon)
    if rows:
        _plot(sweep_dir / "summary.png", rows, x, y, labels, (logx, logy), title or sweep_dir.name, xlabel, ylabel,
              group_by, failed, band=band, thresholds=analysis["thresholds"])
    extra = finish_sweep(sweep_dir, analysis, y, band, title or sweep_dir.name, logy, ylabel, threshold_x)
    return {"rows": rows, "failed": failed, "agg": analysis["agg"], "thresholds": analysis["thresholds"],
            "files": extra}


def _plot(path, rows, x, y, labels, log_axes, title, xlabel, ylabel, group_by, failed, band="std",
          thresholds=()) -> None:
    from dlfoundations.sweeps.aggregate import BAND_LABEL, plot_band
    from dlfoundations.sweeps.threshold import mark_thresholds

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({row.get(group_by) for row in rows}, key=str) if group_by else [None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    replicates = 1
    for g_index, g in enumerate(groups):
        for i, metric in enumerate(y):
            points = sorted((_to_float(r.get(x)), _to_float(r.get(metric))) for r in rows
                            if (group_by is None or r.get(group_by) == g))
            points = [(a, b) for a, b in points if a is not None and b is not None]
            if not points:
                continue
            label = labels[i] if labels and i < len(labels) else metric
            if group_by:
                label = f"{label} ({group_by}={g})"
            # Colour = metric, line style = group: curves of one metric stay recognisable.
            # Points sharing an x (seeds) are one point: their mean, with a band.
            replicates = max(replicates, plot_band(ax, points, band, label=label, color=f"C{i}",
                                                   linestyle=("-", "--", ":", "-.")[g_index % 4]))
    mark_thresholds(ax, thresholds, x)
    if log_axes[0]:
        ax.set_xscale("log")
    if log_axes[1]:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or ", ".join(y))
    note = f" ({len(failed)} failed job(s) not shown)" if failed else ""
    if replicates > 1 and band != "none":
        note += f"\n{BAND_LABEL[band]} (up to {replicates} per point)"
    ax.set_title(title + note)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def log_summary_to_wandb(sweep_dir: Path, rows: list[dict[str, Any]], project: str) -> None:
    """Log the summary table and plot as one W&B run in the sweep's group (offline without a key)."""
    import wandb

    from dlfoundations.config import _wandb_offline

    columns = list(dict.fromkeys(k for row in rows for k in row))
    run = wandb.init(project=project, group=sweep_dir.name, job_type="sweep_summary", name=f"{sweep_dir.name}-summary",
                     dir=str(sweep_dir), mode="offline" if _wandb_offline() else "online", reinit=True)
    table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
    payload: dict[str, Any] = {"sweep_summary": table}
    if (sweep_dir / "summary.png").exists():
        payload["sweep_summary_plot"] = wandb.Image(str(sweep_dir / "summary.png"))
    from dlfoundations.sweeps.analysis import wandb_extras

    payload.update(wandb_extras(sweep_dir, wandb))  # aggregate, heatmaps, report
    run.log(payload)
    run.finish()


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write the summary of its sweep dir."""

    def __init__(self, x: str = "num_params", y: list[str] | None = None, labels: list[str] | None = None,
                 logx: bool = True, title: str | None = None, xlabel: str | None = None,
                 ylabel: str | None = None, group_by: str | None = None, logy: bool = False,
                 replicate_keys: list[str] | None = None, band: str = "std", epsilon: float = 0.01,
                 threshold_x: str = "model.width") -> None:
        self.options = dict(x=x, y=list(y) if y else None, labels=list(labels) if labels else None, logx=logx,
                            title=title, xlabel=xlabel, ylabel=ylabel, group_by=group_by, logy=logy,
                            replicate_keys=list(replicate_keys) if replicate_keys else None, band=band,
                            epsilon=epsilon, threshold_x=threshold_x)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        summary = write_summary(sweep_dir, **self.options)
        wandb_cfg = (config.get("logger") or {}).get("wandb")
        if wandb_cfg and summary["rows"]:
            log_summary_to_wandb(sweep_dir, summary["rows"], project=wandb_cfg.get("project", "dlfoundations"))
        log.info("sweep summary: %d finished, %d failed -> %s", len(summary["rows"]), len(summary["failed"]),
                 sweep_dir / "summary.png")
        if summary["failed"]:
            total = len(summary["rows"]) + len(summary["failed"])
            sys.exit(f"error: {len(summary['failed'])} of {total} sweep jobs failed (see {sweep_dir / 'failed.txt'}); "
                     f"the others are in {sweep_dir / 'summary.csv'}")
