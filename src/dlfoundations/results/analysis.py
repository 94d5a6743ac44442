"""What a sweep summary adds beyond its table and line plot: the seed aggregate, the interpolation
threshold, bars for sweeps over categories, epoch-wise heatmaps and the reproduction report.

``write_summary`` calls :func:`analyse_sweep` before drawing ``summary.png`` (bands and the
threshold mark need its results) and :func:`finish_sweep` after it.
"""

import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlfoundations.config.schemas import Figure
from dlfoundations.errors import UserError
from dlfoundations.record.collect import config_value
from dlfoundations.results.aggregate import is_categorical, plot_bars, write_aggregate
from dlfoundations.results.threshold import describe, train_size_of, write_thresholds

log = logging.getLogger(__name__)


def analyse_sweep(
    sweep_dir: str | Path,
    rows: list[dict[str, Any]],
    replicate_keys: Sequence[str] = ("seed",),
    threshold_x: str = "model.width",
    epsilon: float = 0.01,
    train_metric: str = "train_eval/err",
    test_metric: str = "test/err",
) -> dict[str, Any]:
    """``summary_agg.csv`` and ``threshold.json``; returns the aggregate rows, group keys and thresholds."""
    if not rows:
        return {"agg": [], "group_keys": [], "thresholds": [], "rows": []}
    agg, group_keys = write_aggregate(sweep_dir, rows, replicate_keys)
    train_size = train_size_of(Path(sweep_dir) / str(rows[0]["job"]))
    thresholds = write_thresholds(
        sweep_dir, agg, group_keys, threshold_x, epsilon, train_metric, test_metric, train_size
    )
    for result in thresholds:
        curve = ", ".join(f"{k}={v}" for k, v in result["curve"].items())
        log.info("%s%s", f"[{curve}] " if curve else "", describe(result))
    return {"agg": agg, "group_keys": group_keys, "thresholds": thresholds, "rows": rows}


def sweep_figures(sweep_dir: str | Path, rows: list[dict[str, Any]]) -> list[str] | None:
    """The ``figures`` the sweep's runs were configured with (the experiment's list), read from the
    first finished run's config; None where they name none (``figures: null``, or a sweep dir older
    than the key): then every figure the sweep's keys allow. An unknown name (a hand-edited config)
    is left out with a warning."""
    named = config_value(Path(sweep_dir) / str(rows[0]["job"]), "figures") if rows else None
    if not isinstance(named, list):
        return None
    known = [f.value for f in Figure]
    unknown = [str(f) for f in named if f not in known]
    if unknown:
        log.warning("sweep summary: figures %s unknown (known: %s); left out", unknown, ", ".join(known))
    return [str(f) for f in named if f in known]


def finish_sweep(
    sweep_dir: str | Path,
    analysis: dict[str, Any],
    figures: Sequence[str] | None,
    y: Sequence[str],
    band: str = "std",
    title: str = "",
    logy: bool = False,
    ylabel: str | None = None,
    heatmap_x: str = "model.width",
    noise_key: str = "data.label_noise",
) -> dict[str, Path]:
    """The ``figures`` beyond the line plot: bars (``summary`` of a sweep over categories, replacing
    the line plot), ``heatmap`` (width sweep with per-epoch evaluations), ``zhang`` (label-noise sweep
    without a width sweep) and ``report`` (experiment with a reference); ``figures=None``: each of
    them the sweep allows. A listed figure that cannot be drawn says why in the log; none of them
    touches what is already written."""
    from dlfoundations.results.checks import find_reference
    from dlfoundations.results.heatmap import write_heatmaps
    from dlfoundations.results.report import write_report
    from dlfoundations.results.zhang import CORRUPTION_KEYS, write_zhang

    sweep_dir = Path(sweep_dir)
    written: dict[str, Path] = {}
    agg, group_keys = analysis["agg"], analysis["group_keys"]
    if not agg:
        return written
    listed = figures is not None
    figures = list(figures) if figures is not None else [f.value for f in Figure]
    if Figure.summary in figures and is_categorical(agg, group_keys):
        written["summary.png"] = plot_bars(
            sweep_dir / "summary.png", agg, group_keys, list(y), band, title, logy, ylabel
        )
    if Figure.heatmap in figures:
        if heatmap_x in group_keys:
            written.update(write_heatmaps(sweep_dir, heatmap_x, analysis["thresholds"]))
        elif listed:
            log.warning("figures: no heatmap: it needs a sweep over %s", heatmap_x)
    if Figure.zhang in figures:
        # Zhang et al.'s corruptions: of the labels (a fraction) or of the inputs (a kind).
        swept = [k for k in dict.fromkeys((noise_key, *CORRUPTION_KEYS)) if k in group_keys]
        if len(swept) > 1:  # one axis each: pooling the other kind's runs would mix them in a mean
            log.warning("figures: no zhang figures: they sweep one corruption at a time, this sweep varies %s", swept)
        elif swept and heatmap_x not in group_keys:
            written.update(write_zhang(sweep_dir, analysis["rows"], swept[0]))
        elif listed:
            log.warning(
                "figures: no zhang figures: they need a sweep over %s (and not over %s)",
                " or ".join(dict.fromkeys((noise_key, *CORRUPTION_KEYS))),
                heatmap_x,
            )
    if Figure.report in figures and find_reference(sweep_dir):
        try:
            report = write_report(sweep_dir)
        except UserError as err:
            log.warning("no reproduction report: %s", err)
        else:
            written["report.md"] = sweep_dir / "report.md"
            log.info(
                "reproduction report: %d within tolerance, %d out of tolerance, %d not measured -> %s",
                report["passed"],
                report["out_of_tolerance"],
                report["not_measured"],
                sweep_dir / "report.md",
            )
    return written


FIGURES = ("heatmap", "epochwise_widest", "report", "zhang")


def wandb_extras(sweep_dir: str | Path, wandb: Any) -> dict[str, Any]:
    """What the sweep's W&B summary run logs beyond summary.csv/png: the seed aggregate as a table,
    the heatmaps, report and Zhang figures as images, report.md as text."""
    import csv

    sweep_dir = Path(sweep_dir)
    payload: dict[str, Any] = {}
    agg = sweep_dir / "summary_agg.csv"
    if agg.exists():
        rows = list(csv.reader(agg.open()))
        if rows:
            payload["sweep_summary_agg"] = wandb.Table(columns=rows[0], data=rows[1:])
    for path in sorted(sweep_dir.glob("*.png")):
        if path.stem.startswith(FIGURES):
            payload[f"sweep_figure/{path.stem}"] = wandb.Image(str(path))
    if (sweep_dir / "report.md").exists():
        payload["sweep_report_md"] = wandb.Html(f"<pre>{html.escape((sweep_dir / 'report.md').read_text())}</pre>")
    return payload
