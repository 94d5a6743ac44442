"""Zhang et al. (2017), Fig. 1b/1c, from a label-noise sweep (e.g. experiment=memorize_cpu
data.label_noise=0,0.2,...,1.0): test error against the corruption level, and the epochs needed to
fit the (partly random) training labels against it.

The epoch to fit is the first evaluated epoch whose train accuracy on the training labels
(``train_eval/acc``, eval mode) reaches ``fit_threshold`` (default 1.0: every label fitted). It is
read from the job's ``eval_history.json`` or, without one, from its ``metrics.csv`` (the CSV
logger's per-epoch rows); a job that never fits is shown as not fitted, never as a number.
"""

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlfoundations.atomic import atomic_write_csv, atomic_write_figure
from dlfoundations.record.collect import config_value, to_float
from dlfoundations.record.jobs import read_record
from dlfoundations.results.aggregate import mean_std_ci
from dlfoundations.results.words import words


def train_accuracy_per_epoch(job_dir: str | Path, metric: str = "train_eval/acc") -> list[tuple[int, float]]:
    """(1-based epoch, value) of ``metric`` at every evaluated epoch of a job, in order."""
    job_dir = Path(job_dir)
    history = job_dir / "eval_history.json"
    if history.exists():
        entries = read_record(history).get("history", [])
        return [(int(e["epoch"]), float(e[metric])) for e in entries if metric in e]
    metrics = job_dir / "metrics.csv"
    if metrics.exists():
        rows = csv.DictReader(metrics.open())
        return [(int(r["epoch"]) + 1, float(r[metric])) for r in rows if r.get(metric) not in (None, "")]
    return []


def epochs_to_fit(curve: Sequence[tuple[int, float]], fit_threshold: float = 1.0) -> int | None:
    """First epoch whose value is >= ``fit_threshold`` (up to float32 rounding), or None."""
    return next((epoch for epoch, value in curve if value >= fit_threshold - 1e-6), None)


def zhang_table(
    sweep_dir: str | Path, rows: list[dict[str, Any]], noise_key: str = "data.label_noise", fit_threshold: float = 1.0
) -> list[dict[str, Any]]:
    """Per corruption level: test error (mean, std, n over seeds) and epochs to fit (mean, std,
    n of the jobs that fitted, and how many did not)."""
    levels: dict[float, dict[str, list]] = {}
    for row in rows:
        job = Path(sweep_dir) / str(row["job"])
        level = to_float(row.get(noise_key, config_value(job, noise_key)))
        if level is None:
            continue
        entry = levels.setdefault(level, {"test": [], "fit": [], "unfitted": []})
        if to_float(row.get("test/err")) is not None:
            entry["test"].append(float(row["test/err"]))
        fit = epochs_to_fit(train_accuracy_per_epoch(job), fit_threshold)
        (entry["fit"] if fit is not None else entry["unfitted"]).append(fit if fit is not None else row["job"])
    table = []
    for level in sorted(levels):
        e = levels[level]
        out: dict[str, Any] = {noise_key: level, "jobs_not_fitted": len(e["unfitted"])}
        for name, values in (("test/err", e["test"]), ("epochs_to_fit", e["fit"])):
            if values:
                mean, std, _ = mean_std_ci([float(v) for v in values])
                out.update({name: mean, f"{name}.std": std, f"{name}.n": len(values)})
        table.append(out)
    return table


def write_zhang(
    sweep_dir: str | Path, rows: list[dict[str, Any]], noise_key: str = "data.label_noise", fit_threshold: float = 1.0
) -> dict[str, Path]:
    """``zhang.csv`` and ``zhang.png`` (two panels) into the sweep dir; nothing without two levels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep_dir = Path(sweep_dir)
    table = zhang_table(sweep_dir, rows, noise_key, fit_threshold)
    if len(table) < 2:
        return {}
    columns = list(dict.fromkeys(k for row in table for k in row))
    atomic_write_csv(sweep_dir / "zhang.csv", table, columns)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)  # one corruption axis
    for ax, name, ylabel in (
        (axes[0], "test/err", "test error (true labels)"),
        (axes[1], "epochs_to_fit", f"epochs to fit (train_eval/acc >= {fit_threshold:g})"),
    ):
        pts = [(r[noise_key], r[name], r.get(f"{name}.std") or 0.0) for r in table if name in r]
        if pts:
            xs, ys, errs = zip(*pts)
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3)
        unfitted = [r[noise_key] for r in table if r["jobs_not_fitted"] and name == "epochs_to_fit"]
        if unfitted:
            ax.set_title(f"not fitted within the run at: {', '.join(f'{u:g}' for u in unfitted)}", fontsize=8)
        ax.set_xlabel(words(noise_key))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle("Zhang et al. 2017: fitting random labels (error bars: std over seeds)", fontsize=10)
    fig.tight_layout()
    atomic_write_figure(fig, sweep_dir / "zhang.png")
    return {"zhang.png": sweep_dir / "zhang.png", "zhang.csv": sweep_dir / "zhang.csv"}
