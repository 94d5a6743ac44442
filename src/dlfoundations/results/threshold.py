"""The interpolation threshold of a width sweep and where the test-error peak lies relative to it.

The threshold is the smallest width whose train error on the (noisy) training labels is at most
``epsilon``: the first model that fits its training set. The peak is the highest interior local
maximum of the test error (a point above both neighbours), so that the high error of the tiniest
models does not count as "the peak"; a curve without one (monotone, say) has no peak, and says so.
"""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlfoundations.atomic import atomic_write_json
from dlfoundations.record.collect import config_value, to_float
from dlfoundations.words import words


def _point(x: float, num_params: float | None, train_size: int | None, **values: float) -> dict[str, Any]:
    ratio = num_params / train_size if num_params is not None and train_size else None
    return {"x": x, "num_params": num_params, "params_per_sample": ratio, **values}


def find_peak(ys: Sequence[float]) -> int | None:
    """Index of the highest interior local maximum of ``ys`` (``>`` left, ``>=`` right neighbour);
    None when the curve has none (its highest point is at a boundary: no peak)."""
    interior = [i for i in range(1, len(ys) - 1) if ys[i] > ys[i - 1] and ys[i] >= ys[i + 1]]
    return max(interior, key=lambda i: ys[i]) if interior else None


def significant_rise(
    means: Sequence[float], stds: Sequence[float | None], counts: Sequence[int], i: int
) -> tuple[bool | None, float, float | None, int]:
    """Whether the mean at ``i`` rises above the lowest mean before it by more than twice the
    standard error of that difference (the seeds' spread): (significant, rise, that bound, index of
    the lowest point). ``significant`` is None where a point has one seed (no spread to judge by)."""
    j = min(range(i), key=lambda k: means[k])
    rise = means[i] - means[j]
    si, sj = stds[i], stds[j]
    if si is None or sj is None or min(counts[i], counts[j]) < 2:
        return None, rise, None, j
    needed = 2 * math.sqrt(si**2 / counts[i] + sj**2 / counts[j])
    return rise > needed, rise, needed, j


def interpolation_threshold(
    points: Sequence[dict[str, Any]],
    x: str = "model.width",
    train_metric: str = "train_eval/err",
    test_metric: str = "test/err",
    epsilon: float = 0.01,
    train_size: int | None = None,
) -> dict[str, Any] | None:
    """Threshold and peak of one curve (rows with ``x``, ``num_params`` and both metrics), or None
    when the rows lack the metrics. ``relation`` says where the peak is: ``at``, ``below`` (a
    smaller width) or ``above`` the threshold (or ``no threshold``: no width fits the training set)."""
    rows = sorted(
        (to_float(p.get(x)), to_float(p.get("num_params")), to_float(p.get(train_metric)), to_float(p.get(test_metric)))
        for p in points
    )
    curve = [(a, n, tr, te) for a, n, tr, te in rows if a is not None and tr is not None and te is not None]
    if not curve:
        return None
    fitted = [i for i, c in enumerate(curve) if c[2] <= epsilon]
    peak_i = find_peak([c[3] for c in curve])
    peak_note = None
    if peak_i is not None:  # a bump the seeds' spread explains is no peak
        # The seeds that measured the metric (``<metric>.n``: NaN values dropped), not the rows.
        spread = {
            to_float(p.get(x)): (to_float(p.get(f"{test_metric}.std")), int(to_float(p.get(f"{test_metric}.n")) or 1))
            for p in points
        }
        stds, counts = zip(*(spread.get(c[0], (None, 1)) for c in curve))
        significant, rise, needed, j = significant_rise([c[3] for c in curve], stds, counts, peak_i)
        if significant is False:
            peak_note = (
                f"no significant peak: the highest interior maximum ({x}={curve[peak_i][0]:g}) rises {rise:.2g} "
                f"above {x}={curve[j][0]:g}, within twice the standard error over seeds ({needed:.2g})"
            )
            peak_i = None
    highest = max(range(len(curve)), key=lambda i: curve[i][3])
    xv, params, train, test = curve[highest if peak_i is None else peak_i]
    result: dict[str, Any] = {
        "x_key": x,
        "train_metric": train_metric,
        "test_metric": test_metric,
        "epsilon": epsilon,
        "train_size": train_size,
        "threshold": None,
        # None on a curve without an interior maximum; "highest" is then its boundary maximum.
        "peak": None if peak_i is None else _point(xv, params, train_size, **{test_metric: test, train_metric: train}),
        "highest": _point(xv, params, train_size, **{test_metric: test, train_metric: train}),
        "peak_note": peak_note,
        "relation": "no threshold",
        "grid_steps": None,
        "peak_over_threshold": None,
    }
    if fitted:
        t = fitted[0]
        xt, params_t, train_t, test_t = curve[t]
        result["threshold"] = _point(xt, params_t, train_size, **{train_metric: train_t, test_metric: test_t})
        if peak_i is None:
            result["relation"] = "no interior peak"
        else:
            result["relation"] = "at" if peak_i == t else ("below" if peak_i < t else "above")
            result["grid_steps"] = peak_i - t
            result["peak_over_threshold"] = xv / xt if xt else None
    return result


def describe(result: dict[str, Any]) -> str:
    """One line for logs and report.md."""
    peak, thr = result["peak"], result["threshold"]
    metric = result["test_metric"]

    def size(p: dict[str, Any]) -> str:
        params = f"{p['num_params']:.0f} params" if p["num_params"] is not None else "params unknown"
        return params + (f", {p['params_per_sample']:.3g} params/sample" if p["params_per_sample"] else "")

    if peak is None and result.get("peak_note"):
        head = result["peak_note"]
    elif peak is None:
        top = result["highest"]
        head = (
            f"no interior test-error peak (the highest, {top[metric]:.4g}, is at the boundary "
            f"{result['x_key']}={top['x']:g})"
        )
    else:
        head = f"test-error peak {peak[metric]:.4g} at {result['x_key']}={peak['x']:g} ({size(peak)})"
    if thr is None:
        return f"{head}; no width reaches {result['train_metric']} <= {result['epsilon']:g} (no threshold)"
    if peak is None:
        return (
            f"{head}; interpolation threshold ({result['train_metric']} <= {result['epsilon']:g}) at "
            f"{result['x_key']}={thr['x']:g} ({size(thr)})"
        )
    return (
        f"{head}; interpolation threshold ({result['train_metric']} <= {result['epsilon']:g}) at "
        f"{result['x_key']}={thr['x']:g} ({size(thr)}); the peak is "
        f"{result['relation']} the threshold ({result['grid_steps']:+d} grid steps, "
        f"x ratio {result['peak_over_threshold']:.3g})"
    )


def train_size_of(job_dir: str | Path) -> int | None:
    """Number of training samples of a job: ``data.subset_size`` or ``data.train_size`` of its config."""
    for key in ("data.subset_size", "data.train_size"):
        value = to_float(config_value(job_dir, key))
        if value:
            return int(value)
    return None


def write_thresholds(
    sweep_dir: str | Path,
    agg: list[dict[str, Any]],
    group_keys: Sequence[str],
    x: str = "model.width",
    epsilon: float = 0.01,
    train_metric: str = "train_eval/err",
    test_metric: str = "test/err",
    train_size: int | None = None,
) -> list[dict[str, Any]]:
    """One threshold per curve (per value of the swept keys other than ``x``) into ``threshold.json``;
    nothing when ``x`` is not swept or the metrics are missing."""
    if x not in group_keys:
        return []
    others = [k for k in group_keys if k != x]
    curves: dict[tuple, list[dict[str, Any]]] = {}
    for row in agg:
        curves.setdefault(tuple(row.get(k) for k in others), []).append(row)
    results = []
    for key, rows in curves.items():
        result = interpolation_threshold(rows, x, train_metric, test_metric, epsilon, train_size)
        if result is not None:
            result["curve"] = dict(zip(others, key))
            results.append(result)
    if results:
        atomic_write_json(Path(sweep_dir) / "threshold.json", results)
    return results


def mark_thresholds(ax: Any, results: Sequence[dict[str, Any]], x: str) -> None:
    """Mark each threshold as a vertical dotted line on a summary plot whose x axis is ``x``
    (the width key or ``num_params``)."""
    for i, result in enumerate(results):
        thr = result["threshold"]
        if thr is None:
            continue
        where = thr["num_params"] if x == "num_params" else thr["x"] if x == result["x_key"] else None
        if where is None:
            continue
        curve = ", ".join(f"{words(k)} = {v}" for k, v in result.get("curve", {}).items())
        ax.axvline(
            where,
            color="grey",
            linestyle=(0, (1, 1 + i)),  # dotted, sparser for each further curve's threshold
            linewidth=1.2,
            label=f"interpolation threshold{' (' + curve + ')' if curve else ''}: "
            f"{words(result['train_metric'])} <= {result['epsilon']:g}"
            if i < 4
            else None,
        )
