"""Reproduction report: a run's or sweep's reference checks (dlfoundations.results.checks) written
into its dir as ``report.md`` (the verdict, then one table per curve), ``report.json`` and
``report.png`` (published points with their tolerance over the measured band)."""

import math
import textwrap
from pathlib import Path
from typing import Any

from dlfoundations.atomic import atomic_write_figure, atomic_write_json, atomic_write_text
from dlfoundations.results.aggregate import plot_band
from dlfoundations.results.checks import MISSING, build_report, find_reference, measured_curve, panel_verdict
from dlfoundations.ticks import log_ticks
from dlfoundations.words import words


def published_text(check: dict[str, Any]) -> str:
    """The published side of a check in words: a value, a bound, or a location only."""
    if check["kind"] == "bound":
        return f"{check['rule']} {_fmt(check['published'])}"
    return _fmt(check["published"]) if check["published"] is not None else "(location only)"


def tolerance_text(check: dict[str, Any]) -> str:
    return f"±{_fmt(check['tolerance'])}" if check.get("tolerance") is not None else ""


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: the verdict first, then one table per curve."""
    total = report["passed"] + report["out_of_tolerance"]
    overall = (
        "all measured checks within tolerance"
        if report["out_of_tolerance"] == 0 and total
        else f"{report['out_of_tolerance']} of {total} measured checks OUT OF TOLERANCE"
        if total
        else "nothing measured that the reference covers"
    )
    lines = [
        f"# Reproduction report: {report['task_name'] or Path(report['path']).name}",
        "",
        f"Reference: {report['source']}" + (f" ({report['url']})" if report["url"] else ""),
        "",
    ]
    if report["note"]:
        lines += [f"Note: {report['note']}", ""]
    lines += [
        f"Measured: {report['finished']} finished job(s)"
        + (f", {report['failed']} failed" if report["failed"] else ""),
        "",
    ]
    if report["shared_overrides"]:
        lines += [
            "Overrides of every job (a departure from the published setting explains a miss): `"
            + " ".join(f"{k}={v}" for k, v in report["shared_overrides"].items())
            + "`",
            "",
        ]
    lines += [
        f"**Verdict: {overall}** ({report['passed']} within, {report['out_of_tolerance']} out of tolerance, "
        f"{report['not_measured']} not measured).",
        "",
    ]
    for curve in report["curves"]:
        where = ", ".join(f"{k}={v}" for k, v in curve["where"].items())
        lines += [
            f"## {curve['name']}",
            "",
            f"`{curve['metric']}`"
            + (f" vs `{curve['x']}`" if curve["x"] else "")
            + (f", jobs with {where}" if where else "")
            + "; mean over seeds where there are several.",
            "",
            "| check | x | published | measured | n | diff | tolerance | verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for ch in curve["checks"]:
            measured = _fmt(ch.get("measured")) + (f" ± {ch['std']:.2g}" if ch.get("std") is not None else "")
            x = _fmt(ch["x"]) if ch["kind"] != "peak" else f"{_fmt(ch['x'])} (measured {_fmt(ch.get('measured_x'))})"
            verdict = ch["verdict"]
            if ch["kind"] == "peak" and "location_ok" in ch:
                verdict += f"; location {'ok' if ch['location_ok'] else 'off'} ({ch['x_rule']}), " + (
                    f"height {'ok' if ch['height_ok'] else 'off'}"
                    if ch["published"] is not None
                    else "height not published"
                )
            if ch.get("note"):
                verdict += f"; {ch['note']}"
            lines.append(
                f"| {ch['kind']} | {x} | {published_text(ch)} | {measured} | {_fmt(ch.get('n'))} | "
                f"{_fmt(ch.get('diff'))} | {tolerance_text(ch)} | {verdict} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """report.png: per curve, the measured mean (band: ± std over seeds) and the published points
    with their tolerance as error bars; peaks as stars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Curves the run did not measure at all (e.g. a label-noise sweep's checks in a single run) are
    # named in the title, not drawn as empty panels; at most three panels a row.
    measured_curves = [c for c in report["curves"] if any(ch["verdict"] != MISSING for ch in c["checks"])]
    unmeasured = len(report["curves"]) - len(measured_curves)
    curves = measured_curves or [{"name": "nothing measured that the reference covers", "checks": [], "x": None}]
    cols = min(3, len(curves))
    rows = -(-len(curves) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    axes = [list(grid.flat)]
    for spare in axes[0][len(curves) :]:
        spare.set_visible(False)
    base = Path(report["path"])
    ref_curves = {c.get("name", c["metric"]): c for c in (find_reference(base) or {}).get("curves") or []}
    for ax, curve in zip(axes[0], curves):
        spec = ref_curves.get(curve["name"])
        measured = measured_curve(base, report["_rows"], spec) if spec else {}
        single = not curve["x"]  # a curve of one run: measured and published side by side, no x axis
        pts = [(x if x is not None else 0.0, v) for x, vs in measured.items() for v in vs if math.isfinite(v)]
        if pts:
            plot_band(ax, pts, "std", label="measured (mean ± std)", color="C0")
        for ch in curve["checks"]:
            x = 1.0 if single else ch["x"] if ch["x"] is not None else 0.0
            if ch["kind"] == "bound":  # a one-sided claim: a triangle pointing where the mean must lie
                ax.plot([x], [ch["published"]], "v" if ch["rule"] == "at most" else "^", color="C2", markersize=8)
                continue
            if ch["published"] is None:  # a peak's location only
                ax.axvline(x, color="C3", linestyle=":", linewidth=1)
                continue
            color = {"point": "k", "peak": "C3"}[ch["kind"]]
            ax.errorbar(
                [x],
                [ch["published"]],
                yerr=[ch["tolerance"]],
                fmt="*" if ch["kind"] == "peak" else "x",
                color=color,
                capsize=3,
                markersize=9 if ch["kind"] == "peak" else 6,
            )
        ax.plot([], [], "kx", label="published ± tolerance")
        if any(ch["kind"] == "peak" for ch in curve["checks"]):
            ax.plot([], [], "*", color="C3", label="published peak")
        if any(ch["kind"] == "bound" for ch in curve["checks"]):
            ax.plot([], [], "v", color="C2", label="bound (at most / at least)")
        if report["logx"] and curve["x"]:
            ax.set_xscale("log")
            log_ticks(ax.xaxis)
        if single:
            ax.set_xticks([0.0, 1.0], ["measured", "published"])
            ax.set_xlim(-0.6, 1.6)
        else:
            ax.set_xlabel(words(curve["x"]))
        ax.set_ylabel(words(curve.get("metric", "")))
        ax.ticklabel_format(axis="y", useOffset=False)  # 1.0 with a 1e-6 tolerance: no "1e-6+1" offset
        ax.set_title(f"{textwrap.fill(curve['name'], 48)}\n{panel_verdict(curve['checks'])}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    title = f"{report['task_name'] or ''} vs {report['source']}"
    if unmeasured:
        title += f" ({unmeasured} reference curve(s) not measured by this run: see report.md)"
    fig.suptitle(textwrap.fill(title, 40 * cols), fontsize=9)
    fig.tight_layout()
    atomic_write_figure(fig, path)
    return Path(path)


def write_report(path: str | Path) -> dict[str, Any]:
    """Write report.md, report.json and report.png into the run or sweep dir; return the report."""
    path = Path(path)
    report = build_report(path)
    atomic_write_text(path / "report.md", render_markdown(report))
    atomic_write_json(path / "report.json", {k: v for k, v in report.items() if not k.startswith("_")})
    plot_report(report, path / "report.png")
    return report
