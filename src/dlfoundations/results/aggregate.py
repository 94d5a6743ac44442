"""Seeds as one point: jobs that differ only in replicate keys (``seed`` by default) are averaged.

``aggregate`` groups the rows of :func:`dlfoundations.results.summary.collect` by every swept key
except the replicate keys and gives, per group and metric, the mean, the sample standard deviation
(ddof=1) and the half-width of the 95% confidence interval of the mean (Student t, n-1 degrees of
freedom); ``count`` is the number of finished jobs in the group. ``summary_agg.csv`` holds them as
``<metric>`` (the mean), ``<metric>.std``, ``<metric>.ci95`` and ``<metric>.n`` (the jobs that
logged it; std and CI are empty for n = 1). ``plot_band`` draws a curve as its
mean with a band; ``plot_bars`` draws a sweep over categories as labelled bars.
"""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlfoundations.atomic import atomic_write_csv, atomic_write_figure
from dlfoundations.config.overrides import override_values
from dlfoundations.errors import UserError
from dlfoundations.record.collect import collect, config_value, read_overrides, to_float, with_errors
from dlfoundations.record.jobs import read_record
from dlfoundations.words import words

BANDS = ("std", "ci95", "none")
BAND_LABEL = {"std": "band: mean ± std over seeds", "ci95": "band: 95% CI of the mean over seeds", "none": ""}


def t_quantile_975(dof: int) -> float:
    """The 0.975 quantile of Student's t with ``dof`` degrees of freedom (the 95% two-sided CI)."""
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def mean_std_ci(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """Mean, sample std (ddof=1) and 95% CI half-width of the mean; std and CI are None for n = 1."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_std_ci needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return mean, None, None
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, t_quantile_975(n - 1) * std / math.sqrt(n)


def varying_keys(params: list[dict[str, str]]) -> list[str]:
    """Keys that take more than one value over the jobs (a job without the key counts as a value),
    in first-seen order: what a sweep swept, not the overrides every job shares."""
    keys = dict.fromkeys(k for p in params for k in p)
    return [k for k in keys if len({p.get(k) for p in params}) > 1]


def job_overrides(sweep_dir: str | Path, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Each finished job's overrides as a dict (a single run has none)."""
    params = []
    for row in rows:
        overrides = Path(sweep_dir) / str(row["job"]) / ".hydra" / "overrides.yaml"
        if str(row["job"]) != "." and overrides.exists():
            params.append(override_values(read_overrides(Path(sweep_dir) / str(row["job"]))))
    return params


def swept_keys(sweep_dir: str | Path, rows: list[dict[str, Any]]) -> list[str]:
    """The override keys that vary over the finished jobs, in first-seen order."""
    return varying_keys(job_overrides(sweep_dir, rows))


def load_rows(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Rows of a sweep dir (one per finished job) or of a single run dir (one row, job ``.``)."""

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; give a run dir (with results.json) or a sweep dir")
    if (path / "results.json").exists():
        data = read_record(path / "results.json")
        metrics = with_errors(dict(data.get("metrics", {})))
        extra: dict[str, Any] = {k: data[k] for k in ("num_params", "epochs") if k in data}
        return [{"job": ".", **extra, **metrics}], []
    return collect(path)


def value_of(base: str | Path, row: dict[str, Any], key: str) -> Any:
    """A row's value of ``key``: its own column (an override or a metric), else its job's config."""
    if key in row and row[key] not in (None, ""):
        return row[key]
    return config_value(Path(base) / str(row["job"]), key)


def aggregate(rows: list[dict[str, Any]], group_keys: Sequence[str], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per distinct value of ``group_keys``: those values, ``count``, ``num_params`` (their
    mean, equal within a group of seeds) and ``<metric>``/``.std``/``.ci95`` for every metric."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row.get(k)) for k in group_keys), []).append(row)
    out = []
    for members in groups.values():
        agg: dict[str, Any] = {k: members[0].get(k) for k in group_keys}
        agg["count"] = len(members)
        params = [p for p in (to_float(m.get("num_params")) for m in members) if p is not None]
        agg["num_params"] = round(sum(params) / len(params)) if params else None
        for metric in metrics:
            values = [v for v in (to_float(m.get(metric)) for m in members) if v is not None]
            if not values:
                continue
            agg[metric], agg[f"{metric}.std"], agg[f"{metric}.ci95"] = mean_std_ci(values)
            agg[f"{metric}.n"] = len(values)
        out.append(agg)
    return sorted(
        out,
        key=lambda r: tuple((to_float(r.get(k)) is None, to_float(r.get(k)) or 0, str(r.get(k))) for k in group_keys),
    )


def metric_columns(rows: list[dict[str, Any]], params: Sequence[str]) -> list[str]:
    """Numeric result columns: everything that is neither the job, a swept key nor num_params."""
    skip = {"job", "num_params", *params}
    names = dict.fromkeys(k for row in rows for k in row if k not in skip)
    return [k for k in names if any(to_float(row.get(k)) is not None for row in rows)]


def write_aggregate(
    sweep_dir: str | Path, rows: list[dict[str, Any]], replicate_keys: Sequence[str] = ("seed",)
) -> tuple[list[dict[str, Any]], list[str]]:
    """Write ``summary_agg.csv`` (one row per point, seeds pooled); return its rows and group keys."""
    overrides = job_overrides(sweep_dir, rows)
    group_keys = [k for k in varying_keys(overrides) if k not in replicate_keys]
    every_key = list(dict.fromkeys(k for o in overrides for k in o))  # config values, never metrics
    agg = aggregate(rows, group_keys, metric_columns(rows, every_key))
    columns = list(dict.fromkeys(k for row in agg for k in row))
    atomic_write_csv(Path(sweep_dir) / "summary_agg.csv", agg, columns)
    return agg, group_keys


def band_points(points: Sequence[tuple[float, float]], band: str = "std") -> list[tuple[float, float, float, int]]:
    """(x, mean, half-width of the band, count) per distinct x of (x, y) points; half-width 0 for n = 1."""
    if band not in BANDS:
        raise UserError(f"band={band!r} is not known; use one of {BANDS}")
    by_x: dict[float, list[float]] = {}
    for x, y in points:
        by_x.setdefault(x, []).append(y)
    out = []
    for x in sorted(by_x):
        mean, std, ci = mean_std_ci(by_x[x])
        half = {"std": std, "ci95": ci, "none": None}[band]
        out.append((x, mean, half or 0.0, len(by_x[x])))
    return out


def plot_band(ax: Any, points: Sequence[tuple[float, float]], band: str = "std", **style: Any) -> int:
    """Draw the mean over points sharing an x as a line and the band around it; return the largest
    number of points at one x (1: no replicates, the plain curve)."""
    stats = band_points(points, band)
    xs, means, halves, counts = zip(*stats)
    (line,) = ax.plot(xs, means, marker="o", markersize=3, **style)
    most = max(counts)
    if most > 1 and band != "none":
        ax.fill_between(
            xs,
            [m - h for m, h in zip(means, halves)],
            [m + h for m, h in zip(means, halves)],
            color=line.get_color(),
            alpha=0.2,
            linewidth=0,
        )
    return most


def is_categorical(rows: list[dict[str, Any]], group_keys: Sequence[str]) -> bool:
    """True when every swept key (seeds excluded) takes values that are not numbers (e.g. model=mlp x
    model.activation=relu); a sweep with a numeric key (a width) stays a line plot."""
    return bool(group_keys) and all(any(to_float(row.get(k)) is None for row in rows) for k in group_keys)


def plot_bars(
    path: str | Path,
    agg: list[dict[str, Any]],
    group_keys: Sequence[str],
    metrics: Sequence[str],
    band: str = "std",
    title: str = "",
    logy: bool = False,
    ylabel: str | None = None,
) -> Path:
    """A sweep over categories as labelled bars: one bar per point and metric, height = mean, error
    bar = the band (std or 95% CI over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["\n".join(str(row.get(k)) for k in group_keys) for row in agg]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(agg)), 4.5))
    width = 0.8 / max(1, len(metrics))
    for i, metric in enumerate(metrics):
        xs = [j + (i - (len(metrics) - 1) / 2) * width for j in range(len(agg))]
        heights = [to_float(row.get(metric)) for row in agg]
        errs = [(to_float(row.get(f"{metric}.{band}")) or 0.0) if band != "none" else 0.0 for row in agg]
        ax.bar(
            xs,
            [h if h is not None else 0.0 for h in heights],
            width=width,
            yerr=errs,
            capsize=3,
            label=words(metric),
            color=f"C{i}",
        )
    ax.set_xticks(range(len(agg)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_xlabel(" / ".join(words(k) for k in group_keys))
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel or ", ".join(words(m) for m in metrics))
    counts = sorted({int(row["count"]) for row in agg})
    note = f"; {BAND_LABEL[band]} (n = {', '.join(map(str, counts))})" if max(counts) > 1 and band != "none" else ""
    ax.set_title(f"{title}{note}", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_figure(fig, path)
    return Path(path)
