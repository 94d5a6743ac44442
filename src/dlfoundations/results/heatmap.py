"""Epoch-wise double descent of a width sweep (Nakkiran et al. 2019, Fig. 2).

Each job's ``eval_history.json`` (written by :class:`dlfoundations.callbacks.EvalSchedule`) holds
its metrics at the evaluated epochs. ``heatmap.png`` shows test and train error (noisy labels) over
width x epoch, epochs on a log axis, seeds averaged; ``epochwise_widest.png`` the errors of the
widest model against the epoch. Sweeps over further keys (e.g. label noise) get one pair per value.
"""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlfoundations.atomic import atomic_write_figure
from dlfoundations.config.overrides import override_values
from dlfoundations.record.collect import config_value, job_dirs, read_history, read_overrides, to_float
from dlfoundations.results.aggregate import varying_keys
from dlfoundations.ticks import log_ticks
from dlfoundations.words import words

ERRORS = ("test/err", "train_eval/err", "train_clean/err")


def cell_edges(values: Sequence[float], log: bool) -> list[float]:
    """Edges of heatmap cells centred on the sorted ``values`` (geometric midpoints on a log axis,
    arithmetic ones on a linear axis; the outer cells as wide as their neighbours)."""
    v = [float(x) for x in values]
    if len(v) == 1:
        return [v[0] / 2, v[0] * 2] if log else [v[0] - 0.5, v[0] + 0.5]
    if log:
        mids = [math.sqrt(a * b) for a, b in zip(v, v[1:])]
        return [v[0] ** 2 / mids[0], *mids, v[-1] ** 2 / mids[-1]]
    mids = [(a + b) / 2 for a, b in zip(v, v[1:])]
    return [2 * v[0] - mids[0], *mids, 2 * v[-1] - mids[-1]]


def epoch_grid(sweep_dir: str | Path, x_key: str, replicate_keys: Sequence[str] = ("seed",)) -> dict[tuple, Any]:
    """Per curve (values of the swept keys other than ``x_key`` and the replicate keys): the sorted
    widths, the sorted epochs and ``{metric: matrix[width][epoch]}`` (mean over seeds, NaN where
    no job evaluated)."""
    cells: dict[tuple, dict[tuple[float, int, str], list[float]]] = {}
    jobs = []
    for job in job_dirs(sweep_dir):
        history = read_history(job)
        if history:
            jobs.append((job, history, override_values(read_overrides(job))))
    swept = varying_keys([params for _, _, params in jobs])
    for job, history, params in jobs:
        width = to_float(params.get(x_key, config_value(job, x_key)))
        if width is None:
            continue
        curve = tuple(
            sorted((k, v) for k, v in params.items() if k in swept and k != x_key and k not in replicate_keys)
        )
        for entry in history:
            for metric in ERRORS:
                if metric in entry:
                    cells.setdefault(curve, {}).setdefault((width, int(entry["epoch"]), metric), []).append(
                        entry[metric]
                    )
    grids = {}
    for curve, values in cells.items():
        widths = sorted({w for w, _, _ in values})
        epochs = sorted({e for _, e, _ in values})
        matrices = {}
        for metric in ERRORS:
            matrix = [[_mean(values.get((w, e, metric))) for e in epochs] for w in widths]
            if any(not math.isnan(v) for row in matrix for v in row):
                matrices[metric] = matrix
        grids[curve] = {"widths": widths, "epochs": epochs, "errors": matrices}
    return grids


def _mean(values: list[float] | None) -> float:
    return sum(values) / len(values) if values else math.nan


def write_heatmaps(
    sweep_dir: str | Path, x_key: str = "model.width", thresholds: Sequence[dict[str, Any]] = ()
) -> dict[str, Path]:
    """Draw heatmap(s) and the widest model's epoch-wise curve; nothing when no job has a history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep_dir = Path(sweep_dir)
    written = {}
    for curve, grid in epoch_grid(sweep_dir, x_key).items():
        suffix = "".join(f"_{k}={v}" for k, v in curve)
        label = ", ".join(f"{words(k)} = {v}" for k, v in curve)
        metrics = [m for m in ("test/err", "train_eval/err") if m in grid["errors"]]
        if not metrics or len(grid["widths"]) < 2 or len(grid["epochs"]) < 2:
            continue
        fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.2), squeeze=False)
        threshold = next(
            (
                t["threshold"]
                for t in thresholds
                if t.get("threshold") and all(str(t["curve"].get(k)) == str(v) for k, v in curve)
            ),
            None,
        )
        log_widths = grid["widths"][0] > 0 and grid["widths"][-1] / grid["widths"][0] > 4
        for ax, metric in zip(axes[0], metrics):
            mesh = ax.pcolormesh(
                cell_edges(grid["epochs"], log=True),
                cell_edges(grid["widths"], log=log_widths),
                grid["errors"][metric],
                shading="flat",
                cmap="viridis",
                vmin=0.0,
            )
            fig.colorbar(mesh, ax=ax, label=words(metric))
            ax.set_xscale("log")
            log_ticks(ax.xaxis)
            if log_widths:
                ax.set_yscale("log")
                log_ticks(ax.yaxis)
            if threshold:
                ax.axhline(threshold["x"], color="w", linestyle=":", linewidth=1.2)
            ax.set_xlabel("epoch (evaluated epochs, log scale)")
            ax.set_ylabel(words(x_key))
            ax.set_title(f"{words(metric)}{' (' + label + ')' if label else ''}", fontsize=9)
        fig.tight_layout()
        written[f"heatmap{suffix}.png"] = _save(fig, sweep_dir / f"heatmap{suffix}.png")
        widest = len(grid["widths"]) - 1
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for i, (metric, matrix) in enumerate(grid["errors"].items()):
            points = [(e, v) for e, v in zip(grid["epochs"], matrix[widest]) if not math.isnan(v)]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, color=f"C{i}", label=words(metric))
        ax.set_xscale("log")
        log_ticks(ax.xaxis)
        ax.set_xlabel("epoch")
        ax.set_ylabel("error")
        ax.set_title(
            f"epoch-wise errors of the widest model, {x_key}={grid['widths'][widest]:g}"
            f"{' (' + label + ')' if label else ''}",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        written[f"epochwise_widest{suffix}.png"] = _save(fig, sweep_dir / f"epochwise_widest{suffix}.png")
    return written


def _save(fig: Any, path: Path) -> Path:

    atomic_write_figure(fig, path)
    return path
