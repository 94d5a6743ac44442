"""Seeds as one point: summary_agg.csv, bands, bars for sweeps over categories."""

import csv
import math

import pytest

from dlfoundations.results.aggregate import band_points, mean_std_ci
from dlfoundations.results.summary import write_summary
from tests.synthetic_sweeps import make_sweep

# Test accuracy of width w, seed s: known values, so means and stds are known.
ACC = {(4, 0): 0.50, (4, 1): 0.60, (4, 2): 0.70, (16, 0): 0.80, (16, 1): 0.84, (16, 2): 0.88}


def seeds_sweep(root):
    # Every job also carries the same command-line overrides (not swept: no group key, no column).
    jobs = [
        (
            {"model.width": w, "seed": s, "trainer.max_epochs": 4, "paths.log_dir": "logs"},
            {"test/acc": a, "train_eval/acc": 1.0},
            10 * w,
        )
        for (w, s), a in ACC.items()
    ]
    return make_sweep(root, jobs, config={"data": {"train_size": 100, "label_noise": 0.15}})


def test_mean_std_ci_match_the_textbook_formulas():
    mean, std, ci = mean_std_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and std == pytest.approx(1.0, abs=1e-12)
    # t_{0.975, 2} = 4.302652729911275 (standard tables); CI half-width = t * s / sqrt(n).
    assert ci == pytest.approx(4.302652729911275 / math.sqrt(3), abs=1e-9)
    assert mean_std_ci([5.0]) == (5.0, None, None)


def test_summary_agg_has_one_row_per_width_with_mean_std_count(tmp_path):
    sweep = seeds_sweep(tmp_path)
    summary = write_summary(sweep, x="model.width", y=["test/err"])
    assert len((sweep / "summary.csv").read_text().splitlines()) == 1 + 6  # one row per job stays
    rows = list(csv.DictReader((sweep / "summary_agg.csv").open()))
    assert [r["model.width"] for r in rows] == ["4", "16"] and "seed" not in rows[0]
    assert "trainer.max_epochs" not in rows[0] and "paths.log_dir" not in rows[0]
    assert [int(r["count"]) for r in rows] == [3, 3]
    # test/err of width 4: 0.5, 0.4, 0.3 -> mean 0.4, std 0.1; width 16: 0.2, 0.16, 0.12 -> 0.16, 0.04.
    assert float(rows[0]["test/err"]) == pytest.approx(0.4, abs=1e-9)
    assert float(rows[0]["test/err.std"]) == pytest.approx(0.1, abs=1e-9)
    assert float(rows[1]["test/err"]) == pytest.approx(0.16, abs=1e-9)
    assert float(rows[1]["test/err.std"]) == pytest.approx(0.04, abs=1e-9)
    assert float(rows[1]["test/err.ci95"]) == pytest.approx(4.302652729911275 * 0.04 / math.sqrt(3), abs=1e-9)
    assert int(rows[0]["num_params"]) == 40
    assert "summary.png" not in summary["files"]  # numeric sweep: the line plot with bands stays


def test_band_points_pool_replicates_at_one_x():
    stats = band_points([(4, 0.5), (4, 0.4), (4, 0.3), (16, 0.2)], band="std")
    assert stats[0][:2] == (4, pytest.approx(0.4)) and stats[0][2] == pytest.approx(0.1, abs=1e-12) and stats[0][3] == 3
    assert stats[1] == (16, 0.2, 0.0, 1)  # a single job: no band


def test_a_sweep_over_categories_is_drawn_as_bars(tmp_path):
    jobs = [
        ({"model": m, "model.activation": a}, {"grad_flow/first_last_ratio": r}, 100)
        for m, a, r in [
            ("mlp", "sigmoid", 1e-4),
            ("mlp", "relu", 0.3),
            ("residual_mlp", "sigmoid", 0.9),
            ("residual_mlp", "relu", 1.1),
        ]
    ]
    sweep = make_sweep(tmp_path, jobs)
    summary = write_summary(sweep, x="job", y=["grad_flow/first_last_ratio"], logy=True)
    assert summary["files"]["summary.png"] == sweep / "summary.png"
    assert (sweep / "summary.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((sweep / "summary_agg.csv").open()))
    assert [(r["model"], r["model.activation"]) for r in rows][0] == ("mlp", "relu")
    assert len(rows) == 4 and all(r["count"] == "1" for r in rows)


@pytest.mark.slow
def test_summarize_script_takes_band_and_epsilon(tmp_path):
    import json
    import subprocess
    import sys

    from tests.helpers import REPO

    sweep = seeds_sweep(tmp_path / "sweep")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "summarize_sweep.py"),
            str(sweep),
            "--band",
            "ci95",
            "--epsilon",
            "0.0",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (sweep / "summary_agg.csv").exists()
    # train_eval/acc is 1.0 everywhere: with epsilon 0 the threshold is the smallest width.
    assert json.loads((sweep / "threshold.json").read_text())[0]["threshold"]["x"] == 4
    bad = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "summarize_sweep.py"), str(sweep), "--band", "sem"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
