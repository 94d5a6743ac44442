"""The sweep summary figure: metric(s) against x, one curve per metric and group."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlfoundations.atomic import atomic_write_figure
from dlfoundations.record.collect import to_float
from dlfoundations.ticks import log_ticks
from dlfoundations.words import words


def group_value(value: Any) -> float | int | str:
    """One value per group whether it came from an override ("100") or a saved config (100)."""
    number = to_float(value)
    if number is None:
        return str(value)
    return int(number) if number.is_integer() else number


def _sort_key(value: float | int | str) -> tuple[int, float, str]:
    return (1, 0.0, value) if isinstance(value, str) else (0, float(value), "")


def plot_summary(
    path: Path,
    rows: list[dict[str, Any]],
    x: str,
    y: list[str],
    labels: list[str] | None,
    log_axes: tuple[bool, bool],
    title: str,
    xlabel: str | None,
    ylabel: str | None,
    group_by: str | None,
    failed: list[dict[str, str]],
    band: str = "std",
    thresholds: Sequence[dict[str, Any]] = (),
) -> Path | None:
    """Write the figure to ``path``; None (and nothing written) when no row has a point to plot.
    Points sharing an x (seeds) are drawn as their mean with a ``band`` (std | ci95 | none);
    ``thresholds`` (see :mod:`dlfoundations.results.threshold`) are marked on the x axis."""
    import matplotlib

    from dlfoundations.results.aggregate import BAND_LABEL, plot_band
    from dlfoundations.results.threshold import mark_thresholds

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Rows without a value of group_by are left out of the grouped curves rather than drawn as "=None".
    groups = (
        sorted({group_value(row[group_by]) for row in rows if row.get(group_by) is not None}, key=_sort_key)
        if group_by
        else [None]
    )
    curves = []
    for g_index, g in enumerate(groups):
        for i, metric in enumerate(y):
            raw = [
                (to_float(r.get(x)), to_float(r.get(metric)))
                for r in rows
                if group_by is None or (r.get(group_by) is not None and group_value(r[group_by]) == g)
            ]
            points = sorted((a, b) for a, b in raw if a is not None and b is not None)
            if not points:
                continue
            label = labels[i] if labels and i < len(labels) else words(metric)
            if group_by and len(groups) > 1:  # one group: its value is in the title instead
                label = f"{label} ({words(group_by)} = {g})"
            # Colour = metric, line style = group: curves of one metric stay recognisable.
            curves.append((points, dict(label=label, color=f"C{i}", linestyle=("-", "--", ":", "-.")[g_index % 4])))
    if not curves:
        return None
    # More than a few legend entries would hide curves (seen: over the peak of a two-noise sweep):
    # then the legend goes beside the axes, and the figure grows to hold it.
    outside = len(curves) + len(thresholds or []) > 4
    fig, ax = plt.subplots(figsize=(12, 4.8) if outside else (7, 4.5))
    replicates = max(plot_band(ax, points, band, **style) for points, style in curves)
    mark_thresholds(ax, thresholds, x)
    if log_axes[0]:
        ax.set_xscale("log")
        log_ticks(ax.xaxis)
    if log_axes[1]:
        ax.set_yscale("log")
        log_ticks(ax.yaxis)
    ax.set_xlabel(xlabel or words(x))
    ax.set_ylabel(ylabel or ", ".join(words(m) for m in y))
    note = f" ({words(group_by)} = {groups[0]})" if group_by and len(groups) == 1 else ""
    note += f" ({len(failed)} failed job(s) not shown)" if failed else ""
    if replicates > 1 and band != "none":
        note += f"\n{BAND_LABEL[band]} (up to {replicates} per point)"
    ax.set_title(title + note)
    ax.grid(alpha=0.3)
    if outside:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    atomic_write_figure(fig, path)
    return path
