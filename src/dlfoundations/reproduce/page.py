"""The reproduction's results page: ``<out>/index.html`` and ``<out>/REPORT.md``.

At the top, one table of every experiment with its verdict; below, per experiment, the command, the
figures, the check table (each published point: measured mean ± std over seeds, tolerance, within
or not), the wall time and links to its sweep dir and log. A static page: no script, no server, no
network; the images are the sweep dirs' own files, next to it.
"""

import html
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from dlfoundations.atomic import atomic_write_text
from dlfoundations.reproduce.entries import INFO, NOT_DONE, OUT, PASSED, Entry, entries
from dlfoundations.results.checks import FAIL, MISSING, PASS
from dlfoundations.results.report import published_text, tolerance_text


def machine() -> str:
    """CPU model, cores, GPU, torch version: what the wall times were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def commit() -> str | None:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.strip() or None if found.returncode == 0 else None


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _rel(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out)).as_posix()


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _measured(check: dict[str, Any]) -> str:
    if check.get("measured") is None:
        return ""
    text = _fmt(check["measured"])
    if check.get("std") is not None:
        text += f" ± {check['std']:.2g}"
    if check.get("n"):
        text += f" (n={check['n']})"
    if check["kind"] == "peak" and check.get("measured_x") is not None:
        text += f" at x={_fmt(check['measured_x'])}"
    return text


def unmeasured_curves(report: dict[str, Any]) -> list[str]:
    """Names of the reference curves of which this sweep measured no check."""
    return [c["name"] for c in report["curves"] if all(ch["verdict"] == MISSING for ch in c["checks"])]


def check_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """Every check of a report as text cells: curve, check, x, published, measured, tolerance,
    verdict; curves of which nothing was measured are left out (see :func:`unmeasured_curves`)."""
    rows = []
    skipped = set(unmeasured_curves(report))
    for curve in report["curves"]:
        if curve["name"] in skipped:
            continue
        for ch in curve["checks"]:
            verdict = ch["verdict"]
            if ch.get("note"):
                verdict += f" ({ch['note']})"
            rows.append(
                {
                    "curve": curve["name"],
                    "check": ch["kind"],
                    "x": _fmt(ch.get("x")),
                    "published": published_text(ch),
                    "measured": _measured(ch),
                    "tolerance": tolerance_text(ch),
                    "verdict": verdict,
                    "class": {PASS: PASSED, FAIL: OUT, MISSING: NOT_DONE}.get(ch["verdict"], INFO),
                }
            )
    return rows


def header(items: list[Entry], quick: bool) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "commit": commit(),
        "quick": quick,
        "wall": _clock(_total(items)),
    }


def _links(entry: Entry, out: Path) -> list[tuple[str, str]]:
    """(text, relative href) of an experiment's files: its sweep dir, report, table, log."""
    links = []
    if entry.directory is not None and entry.directory.exists():
        links.append(("sweep dir", _rel(entry.directory, out) + "/"))
        for name in ("report.md", "summary.csv", "summary_agg.csv", "failed.txt"):
            if (entry.directory / name).exists():
                links.append((name, _rel(entry.directory / name, out)))
    if entry.status is not None and entry.status.log:
        links.append(("log", entry.status.log))
    return links


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1180px; margin: 0 auto; padding: 0 16px 48px; color: #1b1b1b; }
h1 { font-size: 1.6em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.pass { background: #e6f4ea; } td.fail { background: #fce8e6; } td.missing { background: #fef7e0; }
td.info { background: #e8f0fe; }
code, pre { background: #f6f8fa; padding: 1px 4px; border-radius: 3px; font-size: 0.9em; }
pre { padding: 8px; overflow-x: auto; white-space: pre-wrap; }
figure { margin: 8px 0 16px; }
img { max-width: 100%; max-height: 560px; width: auto; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
.note { color: #555; } .quick { background: #fef7e0; padding: 8px; border: 1px solid #f0d58c; }
"""


def render_html(out: Path, items: list[Entry], head: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>dlfoundations: the course reproduced</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>dlfoundations: the course reproduced</h1>",
        f"<p>{e(head['date'])} on {e(head['machine'])}"
        + (f", commit <code>{e(head['commit'])}</code>" if head["commit"] else "")
        + f". Wall time of the runs: {e(head['wall'] or '0 s')}.</p>",
    ]
    if head["quick"]:
        parts.append(
            '<p class="quick"><b>Quick run</b> (<code>--quick</code>): tiny epochs and grids, to check the '
            "pipeline end to end. Its numbers are not the experiments' results and its verdicts are expected "
            "to miss.</p>"
        )
    parts += [
        '<table id="verdicts"><thead><tr><th>experiment</th><th>reproduces</th><th>verdict</th>'
        "<th>wall time</th></tr></thead><tbody>"
    ]
    for entry in items:
        wall = _clock(entry.status.wall_seconds) if entry.status else ""
        parts.append(
            f'<tr class="experiment-row" data-name="{e(entry.name)}">'
            f'<td><a href="#{e(entry.name)}">{e(entry.name)}</a></td>'
            f'<td>{e(entry.title)}</td><td class="{entry.kind}">{e(entry.verdict)}</td><td>{e(wall)}</td></tr>'
        )
    parts.append("</tbody></table>")
    for entry in items:
        parts.append(f'<h2 id="{e(entry.name)}">{e(entry.name)}: {e(entry.title)}</h2>')
        parts.append(f"<p>Verdict: <b>{e(entry.verdict)}</b>")
        if entry.status:
            parts.append(f" &middot; wall time {e(_clock(entry.status.wall_seconds))}")
            if entry.status.attempts > 1:
                parts.append(f" over {entry.status.attempts} attempts")
        parts.append("</p>")
        parts.append(f"<pre>{e(entry.command)}</pre>")
        if entry.note:
            parts.append(f'<p class="note">{e(entry.note)}</p>')
        if entry.report:
            parts.append(f'<p class="note">Reference: {e(entry.report["source"])}</p>')
        for figure in entry.figures:
            href = e(_rel(figure, out))
            parts.append(
                f'<figure><a href="{href}"><img src="{href}" alt="{e(figure.name)} of {e(entry.name)}"></a>'
                f"<figcaption>{e(_rel(figure, out))}</figcaption></figure>"
            )
        if entry.report:
            parts.append(
                '<table class="checks"><thead><tr><th>curve</th><th>check</th><th>x</th><th>published</th>'
                "<th>measured (mean ± std over seeds)</th><th>tolerance</th><th>verdict</th></tr></thead><tbody>"
            )
            for row in check_rows(entry.report):
                parts.append(
                    '<tr class="check-row">'
                    + "".join(
                        f"<td>{e(row[k])}</td>" for k in ("curve", "check", "x", "published", "measured", "tolerance")
                    )
                    + f'<td class="{row["class"]}">{e(row["verdict"])}</td></tr>'
                )
            parts.append("</tbody></table>")
            if unmeasured_curves(entry.report):
                parts.append(
                    '<p class="note">Reference curves this sweep does not measure (other sweeps of the same '
                    "experiment, or points a quick run leaves out): "
                    + "; ".join(e(name) for name in unmeasured_curves(entry.report))
                    + ".</p>"
                )
        if entry.failed_runs:
            parts.append("<p>Runs without results:</p><ul>")
            parts += [f"<li><code>{e(f['job'])}</code>: {e(f.get('error', ''))}</li>" for f in entry.failed_runs[:20]]
            if len(entry.failed_runs) > 20:
                parts.append(f"<li>and {len(entry.failed_runs) - 20} more (failed.txt)</li>")
            parts.append("</ul>")
        links = _links(entry, out)
        if links:
            parts.append(
                "<p>" + " &middot; ".join(f'<a href="{e(href)}">{e(text)}</a>' for text, href in links) + "</p>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_markdown(out: Path, items: list[Entry], head: dict[str, Any]) -> str:
    lines = [
        "# dlfoundations: the course reproduced",
        "",
        f"{head['date']} on {head['machine']}"
        + (f", commit `{head['commit']}`" if head["commit"] else "")
        + f". Wall time of the runs: {head['wall'] or '0 s'}.",
        "",
    ]
    if head["quick"]:
        lines += ["**Quick run** (`--quick`): tiny epochs and grids; its numbers are not the experiments' results.", ""]
    lines += ["| experiment | reproduces | verdict | wall time |", "| --- | --- | --- | --- |"]
    for entry in items:
        wall = _clock(entry.status.wall_seconds) if entry.status else ""
        lines.append(f"| [{entry.name}](#{entry.name}) | {entry.title} | {entry.verdict} | {wall} |")
    for entry in items:
        lines += [
            "",
            f"## {entry.name}",
            "",
            entry.title,
            "",
            f"Verdict: **{entry.verdict}**",
            "",
            "```",
            entry.command,
            "```",
            "",
        ]
        if entry.note:
            lines += [entry.note, ""]
        if entry.report:
            lines += [f"Reference: {entry.report['source']}", ""]
        for figure in entry.figures:
            lines += [f"![{figure.name}]({_rel(figure, out)})", ""]
        if entry.report:
            lines += [
                "| curve | check | x | published | measured | tolerance | verdict |",
                "| --- | --- | --- | --- | --- | --- | --- |",
            ]
            for row in check_rows(entry.report):
                cells = [
                    row[k].replace("|", "/")
                    for k in ("curve", "check", "x", "published", "measured", "tolerance", "verdict")
                ]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
            if unmeasured_curves(entry.report):
                lines += ["Not measured by this sweep: " + "; ".join(unmeasured_curves(entry.report)) + ".", ""]
        if entry.failed_runs:
            lines += [f"Runs without results: {len(entry.failed_runs)} (see failed.txt)", ""]
        links = _links(entry, out)
        if links:
            lines += [" · ".join(f"[{text}]({href})" for text, href in links), ""]
    return "\n".join(lines) + "\n"


def _total(items: list[Entry]) -> float:
    return sum(e.status.wall_seconds for e in items if e.status)


def write_page(out: Path, quick: bool, given: dict[str, Path] | None = None) -> tuple[Path, list[Entry]]:
    """Write ``<out>/index.html`` and ``<out>/REPORT.md``; returns the page's path and its entries."""
    items = entries(out, quick, given)
    # What ran, as the status files record it, whatever the flag; the flag only where nothing ran yet.
    ran = [e for e in items if e.status is not None]
    head = header(items, any(e.quick for e in ran) if ran else quick)
    atomic_write_text(out / "index.html", render_html(out, items, head))
    atomic_write_text(out / "REPORT.md", render_markdown(out, items, head))
    return out / "index.html", items
