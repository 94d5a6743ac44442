"""Every job of a Hydra sweep dir (read by :mod:`dlfoundations.record.collect`) into
``summary.csv`` and ``summary.png``. Summaries are written for whatever finished, and name the
rest. The steps are separate functions: :func:`collect`, :func:`choose_x`,
:func:`write_csv`, :func:`plot_summary`; :func:`write_summary` chains them.
"""

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlfoundations.atomic import atomic_write_csv, atomic_write_json, atomic_write_text
from dlfoundations.config.schemas import Figure
from dlfoundations.errors import UserError
from dlfoundations.record.collect import NOT_METRICS, collect, earlier_jobs, to_float
from dlfoundations.record.jobs import current_launch, set_aside
from dlfoundations.results.analysis import analyse_sweep, finish_sweep, sweep_figures, wandb_extras
from dlfoundations.results.plot import plot_summary

log = logging.getLogger(__name__)


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every column of the rows, in first-seen order."""
    return list(dict.fromkeys(k for row in rows for k in row))


def varying(rows: list[dict[str, Any]], key: str) -> bool:
    """Whether ``key`` takes more than one value over the rows."""
    return len({str(row.get(key)) for row in rows}) > 1


def choose_x(rows: list[dict[str, Any]], x: str, group_by: str | None = None) -> str:
    """``x``, unless it is ``num_params`` and the parameter count is the same in every row (a
    label-noise sweep, say): then the swept override with numeric values (seed last), so that the
    points do not all sit at one x."""
    if x != "num_params" or len(rows) < 2 or varying(rows, "num_params"):
        return x
    swept = [
        k
        for k in columns(rows)
        if k not in (*NOT_METRICS, group_by)
        and "/" not in k
        and varying(rows, k)
        and all(to_float(row.get(k)) is not None for row in rows)
    ]
    swept.sort(key=lambda k: k == "seed")
    return swept[0] if swept else x


def check_options(
    rows: list[dict[str, Any]], x: str | None = None, y: list[str] | None = None, group_by: str | None = None
) -> None:
    """A :class:`UserError` naming what there is, for an x, y or group_by that no row has."""
    have = columns(rows)
    metrics = sorted(k for k in have if "/" in k)
    for metric in y or []:
        if metric not in have:
            raise UserError(f"no metric {metric!r} in this sweep's results; available: {', '.join(metrics) or 'none'}")
    settings = sorted(k for k in have if k not in metrics and k != "job")
    for option, key in (("x", x), ("group-by", group_by)):
        if key and key not in have:
            raise UserError(
                f"--{option} {key}: no such column in this sweep; available: {', '.join(settings + metrics)}"
            )
    # Grouping by the swept setting of a sweep with one parameter count (a label-noise sweep) leaves
    # the x axis the seed or one value: a line plot of nothing. (Categories are drawn as bars.)
    chosen = choose_x(rows, x or "num_params", group_by)
    numeric = group_by and all(to_float(row.get(group_by)) is not None for row in rows)
    if numeric and len(rows) > 1 and (chosen == "seed" or not varying(rows, chosen)):
        left = "only the seed" if chosen == "seed" else f"one value ({chosen} is the same in every job)"
        raise UserError(f"--group-by {group_by} leaves {left} for the x axis; drop it or give an --x that varies")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """One row per finished job, every column any job has."""
    return atomic_write_csv(path, rows, columns(rows))


def write_failed(sweep_dir: Path, failed: list[dict[str, str]]) -> Path | None:
    """``failed.txt`` naming every job without results, or no such file once all have finished."""
    path = sweep_dir / "failed.txt"
    if not failed:
        path.unlink(missing_ok=True)  # left by an earlier launch whose failed jobs have since finished
        return None
    for f in failed:
        log.warning("sweep job %s (%s) failed: %s", f["job"], f["overrides"], f["error"])
    return atomic_write_text(path, "".join(f"job {f['job']} ({f['overrides']}): {f['error']}\n" for f in failed))


OUTPUTS_FILE = "summary_files.json"  # what the sweep's latest summary wrote


def file_stamps(sweep_dir: Path) -> dict[str, list[int]]:
    """[inode, mtime in ns] of each file at the top of ``sweep_dir``: a file written since (the
    summaries write atomically: a new inode) has another stamp."""
    stamps = {}
    for path in sweep_dir.iterdir() if sweep_dir.is_dir() else []:
        if path.is_file() and path.name != OUTPUTS_FILE:
            stat = path.stat()
            stamps[path.name] = [stat.st_ino, stat.st_mtime_ns]
    return stamps


def set_aside_stale_outputs(sweep_dir: Path, before: dict[str, list[int]]) -> Path | None:
    """After a summary of ``sweep_dir`` (``before``: :func:`file_stamps` when it started): move the
    files that the summary of an earlier launch into the dir wrote and that no one has rewritten
    since (e.g. zhang.png of a launch with other overrides, whose figure this launch does not draw)
    to ``<sweep dir>/superseded/summary_<time>_<id>/``, so that every file next to summary.csv is of
    the latest launch's jobs; then record what this summary wrote (``summary_files.json``). A
    summary of the same launch (e.g. ``scripts/summarize_sweep.py`` drawing fewer figures) moves
    nothing. Returns that folder, or None if nothing was stale."""
    launch, now = current_launch(sweep_dir), file_stamps(sweep_dir)
    try:
        record = json.loads((sweep_dir / OUTPUTS_FILE).read_text())
        earlier, files = record["launch"], dict(record["files"])
    except (OSError, ValueError, KeyError, TypeError):  # no record yet (a first summary), or a damaged one
        earlier, files = launch, {}
    stale = sorted(n for n, stamp in files.items() if earlier != launch and "/" not in n and now.get(n) == stamp)
    target = None
    if stale:
        why = f"written by the summary of launch {earlier}; not by that of {launch}\n"
        target = set_aside([sweep_dir / name for name in stale], sweep_dir, "summary", why)
        log.info("sweep summary: %s of an earlier launch's summary set aside in %s", ", ".join(stale), target)
    wrote = {n: stamp for n, stamp in now.items() if before.get(n) != stamp and n not in stale}
    if earlier == launch:  # the same launch's earlier summaries: what they wrote is still its own
        wrote = {**{n: s for n, s in files.items() if now.get(n) == s}, **wrote}
    atomic_write_json(sweep_dir / OUTPUTS_FILE, {"launch": launch, "files": wrote})
    return target


def write_summary(
    sweep_dir: str | Path,
    x: str = "num_params",
    y: list[str] | None = None,
    labels: list[str] | None = None,
    logx: bool = True,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    group_by: str | None = None,
    logy: bool = False,
    replicate_keys: list[str] | None = None,
    band: str = "std",
    epsilon: float = 0.01,
    threshold_x: str = "model.width",
    figures: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write ``summary.csv``, ``summary.png`` (where any job finished) and ``failed.txt`` (where any
    failed) into the sweep dir; one curve per ``y`` metric (and per value of ``group_by``).
    Jobs differing only in ``replicate_keys`` (default: seed) are one point with a ``band``
    (std | ci95 | none); see :mod:`dlfoundations.results.analysis` for summary_agg.csv, the
    interpolation threshold (train error <= ``epsilon``), heatmaps and the reproduction report.
    ``figures`` (summary, heatmap, zhang, report): what to draw; None: the ``figures`` the sweep's
    runs were configured with (an experiment's list; every figure the sweep allows where they name
    none), see :func:`sweep_figures`.
    Returns the rows, the failed jobs, the x used, the aggregate, thresholds and the paths ``written``."""

    sweep_dir = Path(sweep_dir)
    stamps = file_stamps(sweep_dir)  # what this summary rewrites, it writes anew (set_aside_stale_outputs)
    if earlier := earlier_jobs(sweep_dir):
        log.warning(
            "sweep summary: job dir(s) %s are of an earlier launch into %s (other overrides): left out",
            ", ".join(earlier),
            sweep_dir,
        )
    rows, failed = collect(sweep_dir, keys=tuple(k for k in (x, group_by) if k))
    y = list(y or ["test/err", "train_eval/err"])
    written: list[Path] = []
    chosen = choose_x(rows, x, group_by)
    if rows:
        written.append(write_csv(sweep_dir / "summary.csv", rows))
        missing = [m for m in y if m not in columns(rows)]
        if missing:
            log.warning(
                "sweep summary: no %s in the results; plotting %s",
                ", ".join(missing),
                ", ".join(m for m in y if m not in missing) or "nothing",
            )
        if group_by and group_by not in columns(rows):
            log.warning("sweep summary: no value of %s in the jobs; one curve per metric", group_by)
            group_by = None
        if chosen != x:
            log.info("sweep summary: %s is the same in every job; x is the swept %s", x, chosen)
        xs = [v for v in (to_float(r.get(chosen)) for r in rows) if v is not None]
        if logx and chosen != x and (not xs or min(xs) <= 0 or max(xs) < 10 * min(xs)):
            logx = False  # a swept setting such as label noise 0..1: linear, and 0 stays visible
        if logx and xs and min(xs) <= 0:
            log.warning("sweep summary: %s has values <= 0; linear x axis", chosen)
            logx = False
    analysis = analyse_sweep(sweep_dir, rows, replicate_keys or ["seed"], threshold_x, epsilon)
    figures = sweep_figures(sweep_dir, rows) if figures is None else list(figures)
    if rows and (figures is None or Figure.summary in figures):
        png = plot_summary(
            sweep_dir / "summary.png",
            rows,
            chosen,
            [m for m in y if m not in missing],
            labels,
            (logx, logy),
            title or sweep_dir.name,
            xlabel,
            ylabel,
            group_by,
            failed,
            band=band,
            thresholds=analysis["thresholds"],
        )
        if png:
            written.append(png)
    failed_txt = write_failed(sweep_dir, failed)
    if failed_txt:
        written.append(failed_txt)
    extra = finish_sweep(sweep_dir, analysis, figures, y, band, title or sweep_dir.name, logy, ylabel, threshold_x)
    written += [path for path in extra.values() if path not in written]
    set_aside_stale_outputs(sweep_dir, stamps)
    return {
        "rows": rows,
        "failed": failed,
        "x": chosen,
        "written": written,
        "agg": analysis["agg"],
        "thresholds": analysis["thresholds"],
        "files": extra,
    }


def log_summary_to_wandb(sweep_dir: Path, rows: list[dict[str, Any]], project: str) -> None:
    """Log the summary table and plot as one W&B run in the sweep's group (offline without a key)."""
    import wandb

    from dlfoundations.config.resolvers import wandb_offline

    cols = columns(rows)
    run = wandb.init(
        project=project,
        group=sweep_dir.name,
        job_type="sweep_summary",
        name=f"{sweep_dir.name}-summary",
        dir=str(sweep_dir),
        mode="offline" if wandb_offline() else "online",
        reinit=True,
    )
    table = wandb.Table(columns=list(cols), data=[[row.get(c) for c in cols] for row in rows])
    payload: dict[str, Any] = {"sweep_summary": table}
    if (sweep_dir / "summary.png").exists():
        payload["sweep_summary_plot"] = wandb.Image(str(sweep_dir / "summary.png"))

    payload.update(wandb_extras(sweep_dir, wandb))  # aggregate, heatmaps, report
    run.log(payload)
    run.finish()
