"""The interpolation threshold of a width sweep and the position of the test-error peak."""

import json

import pytest

from dlfoundations.results.summary import write_summary
from dlfoundations.results.threshold import describe, find_peak, interpolation_threshold
from tests.synthetic_sweeps import make_sweep

# The MNIST-1D notebook's MLP at 15% noise (width: train error, test error).
CURVE = {
    2: (0.717, 0.696),
    9: (0.475, 0.490),
    16: (0.397, 0.472),
    21: (0.381, 0.508),
    36: (0.190, 0.528),
    47: (0.055, 0.5405),
    61: (0.0, 0.540),
    104: (0.0, 0.502),
    300: (0.0, 0.455),
}


def mlp_params(h: int) -> int:
    return 40 * h + h + h * h + h + 10 * h + 10


def points():
    return [
        {"model.width": w, "num_params": mlp_params(w), "train_eval/err": tr, "test/err": te}
        for w, (tr, te) in CURVE.items()
    ]


def test_peak_is_the_highest_interior_maximum_not_the_tiny_models():
    assert find_peak([0.696, 0.490, 0.472, 0.508, 0.528, 0.5405, 0.540, 0.502, 0.455]) == 5
    assert find_peak([0.3, 0.2, 0.1]) is None  # a monotone curve has no peak
    falling = [
        {"model.width": w, "num_params": w, "train_eval/err": e, "test/err": e} for w, e in ((4, 0.61), (8, 0.5))
    ]
    result = interpolation_threshold(falling, epsilon=0.01)
    assert result["peak"] is None and result["highest"]["x"] == 4 and result["relation"] == "no threshold"
    assert describe(result).startswith(
        "no interior test-error peak (the highest, 0.61, is at the boundary model.width=4)"
    )


def test_threshold_and_peak_on_the_notebook_curve():
    result = interpolation_threshold(points(), epsilon=0.01, train_size=4000)
    assert result["threshold"]["x"] == 61 and result["threshold"]["num_params"] == mlp_params(61)
    assert result["threshold"]["params_per_sample"] == pytest.approx(mlp_params(61) / 4000, abs=1e-12)
    assert result["peak"]["x"] == 47 and result["peak"]["test/err"] == pytest.approx(0.5405)
    assert result["relation"] == "below" and result["grid_steps"] == -1
    # A looser epsilon puts the threshold at h = 47, on the peak.
    loose = interpolation_threshold(points(), epsilon=0.06, train_size=4000)
    assert loose["threshold"]["x"] == 47 and loose["relation"] == "at" and loose["grid_steps"] == 0
    # Nothing fits: no threshold, but the peak is still reported.
    none = interpolation_threshold(points(), epsilon=-1.0)
    assert none["threshold"] is None and none["relation"] == "no threshold" and none["peak"]["x"] == 47


def test_sweep_summary_writes_threshold_json(tmp_path):
    jobs = [
        ({"model.width": w}, {"train_eval/acc": 1 - tr, "test/acc": 1 - te}, mlp_params(w))
        for w, (tr, te) in CURVE.items()
    ]
    sweep = make_sweep(tmp_path, jobs, config={"data": {"train_size": 4000}})
    summary = write_summary(sweep, y=["test/err", "train_eval/err"], epsilon=0.01)
    saved = json.loads((sweep / "threshold.json").read_text())
    assert summary["thresholds"][0]["threshold"]["x"] == 61 and saved[0]["threshold"]["x"] == 61
    assert saved[0]["train_size"] == 4000 and saved[0]["peak"]["x"] == 47


def test_describe_names_threshold_peak_and_sizes():
    from dlfoundations.results.threshold import describe

    line = describe(interpolation_threshold(points(), epsilon=0.01, train_size=4000))
    assert (
        "test-error peak 0.5405 at model.width=47" in line
        and "threshold (train_eval/err <= 0.01) at model.width=61" in line
    )
    assert (
        f"{mlp_params(61)} params, {mlp_params(61) / 4000:.3g} params/sample" in line
        and "below the threshold (-1 grid steps" in line
    )
    unknown = [{**p, "num_params": None} for p in points()]
    assert "params unknown" in describe(interpolation_threshold(unknown))


def test_a_report_peak_check_on_a_monotone_curve_says_there_is_no_peak():
    from dlfoundations.results.checks import FAIL, check_peak

    falling = {4: [0.6125], 8: [0.55], 16: [0.5], 32: [0.45]}
    check = check_peak(falling, {"tolerance": 0.04}, {"x": 16, "y": 0.54, "search": [4, 32]})
    assert check["verdict"] == FAIL and check["note"].startswith("no interior peak in 4..32")
    assert "measured_x" not in check  # no boundary point passed off as the peak


def test_a_bump_within_the_seeds_spread_is_no_peak():
    # 0% noise at h = 135 (measured, 5 seeds): 0.3873 after 0.3865 at h = 104, each +- 0.007.
    rows = [
        {"model.width": w, "num_params": w, "train_eval/err": 0.0, "test/err": te, "test/err.std": 0.007}
        | {"count": 5, "test/err.n": 5}
        for w, te in ((61, 0.401), (104, 0.3865), (135, 0.3873), (177, 0.376), (300, 0.368))
    ]
    result = interpolation_threshold(rows)
    assert result["peak"] is None and result["relation"] == "no interior peak"
    assert result["peak_note"].startswith("no significant peak: the highest interior maximum (model.width=135)")
    assert describe(result).startswith("no significant peak")
    # The same means with one seed each: nothing to judge the bump by, so it stays a peak.
    single = [{k: v for k, v in r.items() if k not in ("test/err.std", "count", "test/err.n")} for r in rows]
    assert interpolation_threshold(single)["peak"]["x"] == 135


def test_the_peaks_standard_error_counts_the_seeds_that_measured_it_not_the_rows():
    # A rise of 0.01 with std 0.007: significant over 5 seeds (2 SE = 0.0089), not over 2 (0.014),
    # e.g. when 3 of 5 runs logged NaN (aggregate drops them: count 5, test/err.n 2).
    def rows(n):
        return [
            {"model.width": w, "num_params": w, "train_eval/err": 0.0, "test/err": te, "test/err.std": 0.007}
            | {"count": 5, "test/err.n": n}
            for w, te in ((10, 0.40), (20, 0.38), (30, 0.39), (40, 0.37))
        ]

    assert interpolation_threshold(rows(5))["peak"]["x"] == 30
    two = interpolation_threshold(rows(2))
    assert two["peak"] is None and two["peak_note"].startswith("no significant peak"), two["peak_note"]
