"""Reference checks: the measured results of a run or sweep against the experiment's ``reference``.

Every experiment yaml carries a ``reference:`` block (see conf/experiment/*.yaml)::

    reference:
      source: "who published the numbers, where"
      curves:
        - name: "15% label noise"       # one measured curve, compared point by point
          metric: test/err              # a results.json metric (``*/err`` = 1 - ``*/acc``)
          x: model.width                # the swept key the points refer to (omit: a single run)
          where: {data.label_noise: 0.15}  # which jobs (config values; swept or not)
          tolerance: 0.05               # absolute, in the metric's units (or rel_tolerance: 0.2)
          points: [[2, 0.696], [47, 0.5405]]   # [x, published]; [null, y] or {y: ..} without x
          peak: {x: 47, y: 0.5405, search: [16, 300], x_factor: 1.5}  # or x_tolerance: 60

A point passes when |measured mean - published| <= tolerance; the peak passes when its location
(the highest interior local maximum inside ``search``) is within ``x_factor`` (ratio) or
``x_tolerance`` (absolute) of the published one and its height within the tolerance. Points the
run did not measure are listed as such, never counted as passes. dlfoundations.results.report
writes what is found here as ``report.md``, ``report.json`` and ``report.png``.
"""

import math
from pathlib import Path
from typing import Any

from dlfoundations.errors import UserError
from dlfoundations.record.collect import config_value, to_float
from dlfoundations.results.aggregate import job_overrides, load_rows, mean_std_ci, value_of, varying_keys
from dlfoundations.results.threshold import find_peak, significant_rise

PASS, FAIL, MISSING = "within tolerance", "OUT OF TOLERANCE", "not measured"


def panel_verdict(checks: list[dict[str, Any]]) -> str:
    """A figure panel's one-line verdict: how many checks are out, within, and not measured."""
    counts = {v: sum(ch["verdict"] == v for ch in checks) for v in (FAIL, PASS, MISSING)}
    if counts[MISSING] == len(checks):
        return "not measured"
    parts = [f"{counts[FAIL]} out of tolerance" if counts[FAIL] else "all measured within tolerance"]
    if counts[MISSING]:
        parts.append(f"{counts[MISSING]} not measured")
    return ", ".join(parts)


def find_reference(path: str | Path) -> dict[str, Any] | None:
    """The ``reference`` block of the run (its .hydra/config.yaml) or of the sweep's first job."""
    path = Path(path)
    candidates = [path] + sorted((p.parent.parent for p in path.glob("*/.hydra/config.yaml")), key=str)
    for job in candidates:
        ref = config_value(job, "reference")
        if ref:
            return ref
    return None


def _plain(value: Any) -> Any:
    """An override's ``null`` (text) is the config's None."""
    return None if value in ("null", "None") else value


def _same(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    fa, fb = to_float(a), to_float(b)
    if fa is not None and fb is not None:
        return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


def _tolerance(spec: dict[str, Any], published: float) -> float:
    if spec.get("tolerance") is not None:
        return float(spec["tolerance"])
    if spec.get("rel_tolerance") is not None:
        return float(spec["rel_tolerance"]) * abs(published)
    raise UserError("reference curve needs tolerance (absolute) or rel_tolerance; add one to the experiment yaml")


def _points(curve: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in curve.get("points") or []:
        item = dict(p) if isinstance(p, dict) else {"x": p[0], "y": p[1]}
        out.append(item)
    return out


def measured_curve(base: Path, rows: list[dict[str, Any]], curve: dict[str, Any]) -> dict[Any, list[float]]:
    """Values of the curve's metric per x (key None without x) over the jobs its ``where`` selects."""
    where = curve.get("where") or {}
    out: dict[Any, list[float]] = {}
    for row in rows:
        if not all(_same(value_of(base, row, k), v) for k, v in where.items()):
            continue
        raw = row.get(curve["metric"])
        y = to_float(raw)
        if y is None:
            if not _non_finite(raw):
                continue  # not recorded by this job
            y = math.nan  # a diverged run: its checks fail (see _diverged), never pass or go unmeasured
        x = to_float(value_of(base, row, curve["x"])) if curve.get("x") else None
        if curve.get("x") and x is None:
            continue
        out.setdefault(x, []).append(y)
    return out


def _non_finite(value: Any) -> bool:
    """Whether ``value`` is a number that is NaN or infinite (a diverged run's metric)."""
    if isinstance(value, bool):
        return False
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _diverged(values: list[float]) -> str | None:
    """The note of a check whose runs include non-finite values (the check fails), else None."""
    bad = sum(not math.isfinite(v) for v in values)
    return f"{bad} of {len(values)} runs measured NaN or inf (diverged)" if bad else None


def check_curve(measured: dict[Any, list[float]], curve: dict[str, Any]) -> dict[str, Any]:
    """Point-by-point and peak verdicts of one reference curve against measured values per x."""
    checks = []
    for p in _points(curve):
        if "at_most" in p or "at_least" in p:
            checks.append(check_bound(measured, p))
            continue
        x, y = (to_float(p.get("x")) if p.get("x") is not None else None), float(p["y"])
        tol = _tolerance({**curve, **{k: p[k] for k in ("tolerance", "rel_tolerance") if k in p}}, y)
        values = next(
            (
                v
                for mx, v in measured.items()
                if (mx is None and x is None) or (mx is not None and x is not None and math.isclose(mx, x))
            ),
            None,
        )
        check = {"kind": "point", "x": x, "published": y, "tolerance": tol, "note": p.get("note")}
        if not values:
            checks.append({**check, "verdict": MISSING})
            continue
        diverged = _diverged(values)
        if diverged:
            checks.append({**check, "n": len(values), "verdict": FAIL, "note": diverged})
            continue
        mean, std, _ = mean_std_ci(values)
        checks.append(
            {
                **check,
                "measured": mean,
                "std": std,
                "n": len(values),
                "diff": mean - y,
                "verdict": PASS if abs(mean - y) <= tol else FAIL,
            }
        )
    peak = curve.get("peak")
    if peak:
        checks.append(check_peak(measured, curve, peak))
    return {
        "name": curve.get("name", curve["metric"]),
        "metric": curve["metric"],
        "x": curve.get("x"),
        "where": curve.get("where") or {},
        "checks": checks,
    }


def _values_at(measured: dict[Any, list[float]], x: float | None) -> list[float] | None:
    return next(
        (
            v
            for mx, v in measured.items()
            if (mx is None and x is None) or (mx is not None and x is not None and math.isclose(mx, x))
        ),
        None,
    )


def check_bound(measured: dict[Any, list[float]], point: dict[str, Any]) -> dict[str, Any]:
    """A one-sided check (``{at_most: 1e-6}`` or ``{at_least: 0.1}``, optionally at ``x``): the
    measured mean against a bound, for claims the source makes without a number to match."""
    side = "at_most" if "at_most" in point else "at_least"
    bound = float(point[side])
    x = to_float(point.get("x")) if point.get("x") is not None else None
    check = {"kind": "bound", "x": x, "published": bound, "rule": side.replace("_", " "), "note": point.get("note")}
    values = _values_at(measured, x)
    if not values:
        return {**check, "verdict": MISSING}
    diverged = _diverged(values)
    if diverged:
        return {**check, "n": len(values), "verdict": FAIL, "note": diverged}
    mean, std, _ = mean_std_ci(values)
    ok = mean <= bound if side == "at_most" else mean >= bound
    return {**check, "measured": mean, "std": std, "n": len(values), "verdict": PASS if ok else FAIL}


def check_peak(measured: dict[Any, list[float]], curve: dict[str, Any], peak: dict[str, Any]) -> dict[str, Any]:
    """The measured peak (mean curve, within ``search``) against the published location and height
    (a peak without ``y``: its location only, for a source that predicts where, not how high)."""
    low, high = peak.get("search") or [-math.inf, math.inf]
    xs = sorted(x for x in measured if x is not None and low <= x <= high)
    y_pub, x_pub = (float(peak["y"]) if peak.get("y") is not None else None), float(peak["x"])
    tol = (
        _tolerance({**curve, **{k: peak[k] for k in ("tolerance", "rel_tolerance") if k in peak}}, y_pub)
        if y_pub is not None
        else None
    )
    check = {"kind": "peak", "x": x_pub, "published": y_pub, "tolerance": tol, "search": [low, high]}
    if len(xs) < 3:
        return {**check, "verdict": MISSING, "note": f"needs >= 3 measured x in {low}..{high}, got {len(xs)}"}
    diverged = [x for x in xs if _diverged(measured[x])]
    if diverged:
        where = ", ".join(f"x={x:g}" for x in diverged)
        return {**check, "verdict": FAIL, "note": f"runs measured NaN or inf (diverged) at {where}"}
    means = [sum(measured[x]) / len(measured[x]) for x in xs]
    i = find_peak(means)
    if i is None:
        top = max(range(len(xs)), key=lambda k: means[k])
        note = f"no interior peak in {low:g}..{high:g}: the highest mean ({means[top]:.4g}) is at x={xs[top]:g}"
        return {**check, "verdict": FAIL, "note": note}
    x_meas, y_meas = xs[i], means[i]
    # A peak is a rise above the lowest point before it that the seeds' spread cannot explain
    # (with one seed per point there is no spread to judge by, and the note says so).
    stats = [mean_std_ci(measured[x]) for x in xs]
    significant, rise, needed, j = significant_rise(means, [st[1] for st in stats], [len(measured[x]) for x in xs], i)
    if significant is False:
        note = (
            f"no significant peak in {low:g}..{high:g}: the highest interior local maximum "
            f"(x={x_meas:g}, {y_meas:.4g}) rises {rise:.2g} above the lowest point before it "
            f"(x={xs[j]:g}), within twice the standard error over seeds ({needed:.2g})"
        )
        return {**check, "measured_x": x_meas, "measured": y_meas, "verdict": FAIL, "note": note}
    if significant:
        check["note"] = f"rise {rise:.2g} above x={xs[j]:g}, twice the standard error {needed:.2g}"
    else:
        check["note"] = f"rise {rise:.2g} above x={xs[j]:g} (one seed: not tested against the seed spread)"
    if peak.get("x_factor"):
        factor = float(peak["x_factor"])
        x_ok, x_rule = x_pub / factor <= x_meas <= x_pub * factor, f"within a factor {factor:g}"
    else:
        width = float(peak.get("x_tolerance", 0))
        x_ok, x_rule = abs(x_meas - x_pub) <= width, f"within ±{width:g}"
    y_ok = y_pub is None or tol is None or abs(y_meas - y_pub) <= tol
    return {
        **check,
        "measured_x": x_meas,
        "measured": y_meas,
        "diff": y_meas - y_pub if y_pub is not None else None,
        "x_rule": x_rule,
        "location_ok": x_ok,
        "height_ok": y_ok,
        "verdict": PASS if x_ok and y_ok else FAIL,
    }


def build_report(path: str | Path) -> dict[str, Any]:
    """Compare a run or sweep dir with its reference; raises UserError when there is nothing to compare."""
    path = Path(path)
    rows, failed = load_rows(path)
    ref = find_reference(path)
    if not ref:
        raise UserError(f"no reference block in the config of {path}; add `reference:` to the experiment yaml")
    if not rows:
        raise UserError(f"no finished job (results.json) in {path}; nothing to compare yet")
    curves = [check_curve(measured_curve(path, rows, c), c) for c in ref.get("curves") or []]
    verdicts = [ch["verdict"] for c in curves for ch in c["checks"]]
    overrides = job_overrides(path, rows)
    if rows[0]["job"] == "." and (path / ".hydra" / "overrides.yaml").exists():
        overrides = job_overrides(path.parent, [{"job": path.name}])
    swept = varying_keys(overrides)
    shared = {k: v for k, v in (overrides[0] if overrides else {}).items() if k not in swept}
    return {
        "path": str(path),
        "source": ref.get("source", "?"),
        "url": ref.get("url"),
        "note": ref.get("note"),
        "task_name": config_value(path if rows[0]["job"] == "." else path / str(rows[0]["job"]), "task_name"),
        "finished": len(rows),
        "failed": len(failed),
        "curves": curves,
        "shared_overrides": shared,
        "passed": verdicts.count(PASS),
        "out_of_tolerance": verdicts.count(FAIL),
        "not_measured": verdicts.count(MISSING),
        "logx": bool(ref.get("logx", False)),
        "_rows": rows,
    }
