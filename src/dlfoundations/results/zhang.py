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
from dlfoundations.words import words


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


CORRUPTION_KEYS = ("data.label_noise", "data.input_corruption")  # Zhang et al.'s two kinds of corruption


def _level(value: Any) -> float | str:
    """A corruption level: a fraction of labels (a number), or a kind of input (its name; none for
    the true inputs)."""
    number = to_float(value)
    return number if number is not None else ("none" if value in (None, "None", "null") else str(value))


def zhang_table(
    sweep_dir: str | Path, rows: list[dict[str, Any]], noise_key: str = "data.label_noise", fit_threshold: float = 1.0
) -> list[dict[str, Any]]:
    """Per corruption level (a label-noise fraction, or an input corruption's name, in the sweep's
    order): test error (mean, std, n over seeds), epochs to fit (mean, std, n of the jobs that
    fitted, and how many did not) and the mean train accuracy at each evaluated epoch (``curve``)."""
    levels: dict[float | str, dict[str, list]] = {}
    for row in rows:
        job = Path(sweep_dir) / str(row["job"])
        raw = row.get(noise_key, config_value(job, noise_key))
        if raw is None and noise_key != "data.input_corruption":  # no label-noise level: not a point
            continue
        level = _level(raw)
        entry = levels.setdefault(level, {"test": [], "fit": [], "unfitted": [], "curves": []})
        if to_float(row.get("test/err")) is not None:
            entry["test"].append(float(row["test/err"]))
        curve = train_accuracy_per_epoch(job)
        entry["curves"].append(curve)
        fit = epochs_to_fit(curve, fit_threshold)
        (entry["fit"] if fit is not None else entry["unfitted"]).append(fit if fit is not None else row["job"])
    numeric = all(isinstance(level, float) for level in levels)
    order = sorted(levels) if numeric else list(levels)  # kinds in the order the sweep ran them
    table = []
    for level in order:
        e = levels[level]
        out: dict[str, Any] = {noise_key: level, "jobs_not_fitted": len(e["unfitted"])}
        for name, values in (("test/err", e["test"]), ("epochs_to_fit", e["fit"])):
            if values:
                mean, std, _ = mean_std_ci([float(v) for v in values])
                out.update({name: mean, f"{name}.std": std, f"{name}.n": len(values)})
        out["curve"] = _mean_curve(e["curves"])
        table.append(out)
    return table


def _mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Mean over seeds at each epoch every curve has (runs that stopped early: up to the shortest)."""
    if not curves or not all(curves):
        return []
    common = set.intersection(*({e for e, _ in c} for c in curves))
    values = {e: [v for c in curves for ce, v in c if ce == e] for e in sorted(common)}
    return [(e, sum(v) / len(v)) for e, v in values.items()]


def write_zhang(
    sweep_dir: str | Path, rows: list[dict[str, Any]], noise_key: str = "data.label_noise", fit_threshold: float = 1.0
) -> dict[str, Path]:
    """``zhang.csv`` and ``zhang.png`` into the sweep dir: train accuracy per epoch for each level
    (Zhang et al. Fig. 1a), test error (1c) and epochs to fit (1b) against the level; nothing
    without two levels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep_dir = Path(sweep_dir)
    table = zhang_table(sweep_dir, rows, noise_key, fit_threshold)
    if len(table) < 2:
        return {}
    columns = [c for c in dict.fromkeys(k for row in table for k in row) if c != "curve"]
    atomic_write_csv(sweep_dir / "zhang.csv", [{k: v for k, v in r.items() if k != "curve"} for r in table], columns)
    numeric = all(isinstance(r[noise_key], float) for r in table)
    position = {r[noise_key]: (r[noise_key] if numeric else i) for i, r in enumerate(table)}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    curves_ax, panels = axes[0], axes[1:]
    for i, r in enumerate(table):
        if r["curve"]:
            epochs, accuracies = zip(*r["curve"])
            label = f"{r[noise_key]:g}" if numeric else str(r[noise_key])
            curves_ax.plot(epochs, accuracies, color=plt.get_cmap("viridis")(i / max(1, len(table) - 1)), label=label)
    curves_ax.set_xlabel("epoch")
    curves_ax.set_ylabel(f"{words('train_eval/acc')} (mean over seeds)")
    if any(r["curve"] for r in table):
        curves_ax.legend(title=words(noise_key), fontsize=7, title_fontsize=7)
    else:  # say why the panel is empty rather than leave it blank
        curves_ax.text(
            0.5,
            0.5,
            "no per-epoch curves:\nno run evaluated during training",
            ha="center",
            va="center",
            transform=curves_ax.transAxes,
        )
    curves_ax.grid(alpha=0.3)
    for ax, name, ylabel in (
        (panels[0], "test/err", "test error (true labels)"),
        (panels[1], "epochs_to_fit", f"epochs to fit (train_eval/acc >= {fit_threshold:g})"),
    ):
        pts = [(position[r[noise_key]], r[name], r.get(f"{name}.std") or 0.0) for r in table if name in r]
        if pts:
            xs, ys, errs = zip(*pts)
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, linestyle="-" if numeric else "none")
        unfitted = [str(r[noise_key]) for r in table if r["jobs_not_fitted"] and name == "epochs_to_fit"]
        if unfitted:
            ax.set_title(f"not fitted within the run at: {', '.join(unfitted)}", fontsize=8)
        if not numeric:
            ax.set_xticks(list(position.values()), [str(k) for k in position], rotation=15)
            ax.set_xlim(-0.5, len(position) - 0.5)
        ax.set_xlabel(words(noise_key))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    panels[1].sharex(panels[0])  # one corruption axis
    fig.suptitle("Zhang et al. 2017: fitting corrupted data (error bars: std over seeds)", fontsize=10)
    fig.tight_layout()
    atomic_write_figure(fig, sweep_dir / "zhang.png")
    return {"zhang.png": sweep_dir / "zhang.png", "zhang.csv": sweep_dir / "zhang.csv"}
