"""The reproduction report: verdicts against a reference, for a sweep made to pass and one made to fail."""

import json
import subprocess
import sys

import pytest

from dlfoundations.results.checks import FAIL, MISSING, PASS, build_report
from dlfoundations.results.report import write_report
from tests.helpers import REPO
from tests.synthetic_sweeps import make_sweep, write_job

REFERENCE = {
    "source": "synthetic paper",
    "curves": [
        {
            "name": "test error",
            "metric": "test/err",
            "x": "model.width",
            "where": {"data.label_noise": 0.15},
            "tolerance": 0.02,
            "points": [[4, 0.50], [16, 0.60], [64, 0.40]],
            "peak": {"x": 16, "y": 0.60, "search": [4, 256], "x_factor": 1.5},
        }
    ],
}
CONFIG = {"task_name": "toy", "data": {"label_noise": 0.15}, "reference": REFERENCE}


def sweep_with(root, test_err: dict[int, list[float]]):
    jobs = [
        ({"model.width": w, "seed": s}, {"test/acc": 1 - e}, 10 * w)
        for w, errs in test_err.items()
        for s, e in enumerate(errs)
    ]
    return make_sweep(root, jobs, config=CONFIG)


def verdicts(report):
    return [(c["kind"], c["x"], c["verdict"]) for c in report["curves"][0]["checks"]]


def test_a_sweep_within_tolerance_passes_point_by_point_and_at_the_peak(tmp_path):
    # Seeds around the published values: means 0.505, 0.59, 0.41 (all within 0.02).
    sweep = sweep_with(tmp_path, {4: [0.50, 0.51], 8: [0.55, 0.55], 16: [0.58, 0.60], 32: [0.5, 0.5], 64: [0.41, 0.41]})
    report = write_report(sweep)
    assert verdicts(report) == [("point", 4, PASS), ("point", 16, PASS), ("point", 64, PASS), ("peak", 16, PASS)]
    peak = report["curves"][0]["checks"][-1]
    assert peak["measured_x"] == 16 and peak["measured"] == pytest.approx(0.59, abs=1e-12)
    assert report["curves"][0]["checks"][0]["n"] == 2 and report["out_of_tolerance"] == 0
    text = (sweep / "report.md").read_text()
    assert "all measured checks within tolerance" in text and "synthetic paper" in text
    assert (sweep / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((sweep / "report.json").read_text())["passed"] == 4


def test_a_sweep_off_the_reference_fails_and_says_where(tmp_path):
    # Peak moved to width 64 and too high; width 4 off by 0.1; width 16 not measured.
    sweep = sweep_with(tmp_path, {4: [0.40], 8: [0.45], 32: [0.50], 64: [0.70], 128: [0.5]})
    report = build_report(sweep)
    assert verdicts(report) == [("point", 4, FAIL), ("point", 16, MISSING), ("point", 64, FAIL), ("peak", 16, FAIL)]
    peak = report["curves"][0]["checks"][-1]
    assert peak["measured_x"] == 64 and not peak["location_ok"] and not peak["height_ok"]
    assert report["out_of_tolerance"] == 3 and report["not_measured"] == 1 and report["passed"] == 0


def test_a_peak_within_the_seeds_spread_is_no_peak(tmp_path):
    # Width 16 is the highest interior point, 0.005 above width 8, but the seeds scatter by 0.05:
    # twice the standard error of that difference is 0.09, so there is no peak to speak of.
    noisy = {4: [0.60, 0.70], 8: [0.55, 0.62], 16: [0.56, 0.62], 32: [0.50, 0.52], 64: [0.41, 0.41]}
    peak = build_report(sweep_with(tmp_path / "noisy", noisy))["curves"][0]["checks"][-1]
    assert peak["verdict"] == FAIL and peak["note"].startswith("no significant peak in 4..256")
    # The same means with tight seeds: a rise of 0.005 that the spread (0.0014) cannot explain.
    tight = {4: [0.65, 0.65], 8: [0.584, 0.586], 16: [0.589, 0.591], 32: [0.51, 0.51], 64: [0.41, 0.41]}
    peak = build_report(sweep_with(tmp_path / "tight", tight))["curves"][0]["checks"][-1]
    assert peak["verdict"] == PASS and peak["measured_x"] == 16 and peak["note"].startswith("rise 0.005")


def test_a_diverged_seed_fails_its_checks_instead_of_dropping_out_of_them(tmp_path):
    # The passing sweep of the first test, but one of width 16's two seeds diverged (NaN): its
    # point and the peak fail and say why; the other points still pass; the figure still draws.
    nan = float("nan")
    sweep = sweep_with(tmp_path, {4: [0.50, 0.51], 8: [0.55, 0.55], 16: [0.58, nan], 32: [0.5, 0.5], 64: [0.41, 0.41]})
    report = write_report(sweep)
    assert verdicts(report) == [("point", 4, PASS), ("point", 16, FAIL), ("point", 64, PASS), ("peak", 16, FAIL)]
    point, peak = report["curves"][0]["checks"][1], report["curves"][0]["checks"][-1]
    assert point["note"] == "1 of 2 runs measured NaN or inf (diverged)" and point["n"] == 2
    assert peak["note"] == "runs measured NaN or inf (diverged) at x=16"
    assert report["out_of_tolerance"] == 2 and report["not_measured"] == 0
    assert (sweep / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_jobs_of_another_noise_level_are_not_compared(tmp_path):
    sweep = tmp_path / "sweep"
    jobs = [({"model.width": w, "data.label_noise": 0.0}, {"test/acc": 0.5}, 10) for w in (4, 16, 64)]
    make_sweep(sweep, jobs, config=CONFIG)
    report = build_report(sweep)
    assert {c["verdict"] for c in report["curves"][0]["checks"]} == {MISSING}


@pytest.mark.slow
def test_single_run_dir_and_script(tmp_path):
    ref = {
        "source": "Zhang et al.",
        "curves": [
            {"name": "train", "metric": "train_eval/acc", "tolerance": 0.02, "points": [{"y": 1.0}]},
            {"name": "test", "metric": "test/acc", "tolerance": 0.02, "points": [{"y": 0.10}]},
        ],
    }
    run = write_job(
        tmp_path / "run", {"trainer.max_epochs": 4}, {"train_eval/acc": 1.0, "test/acc": 0.15}, 100, {"reference": ref}
    )
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "report.py"), str(run)], capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stderr  # test accuracy 0.15 is 0.05 above chance: out of tolerance
    assert "1 within tolerance, 1 out of tolerance, 0 not measured" in proc.stdout
    assert "OUT OF TOLERANCE" in (run / "report.md").read_text()
    assert (
        "Overrides of every job (a departure from the published setting explains a miss): `trainer.max_epochs=4`"
        in (run / "report.md").read_text()
    )
    missing = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "report.py"), str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "is not a directory" in missing.stderr
    norefs = write_job(tmp_path / "bare", {}, {"test/acc": 0.5}, 10, {})
    bare = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "report.py"), str(norefs)], capture_output=True, text=True
    )
    assert bare.returncode == 2 and "no reference block" in bare.stderr
    unmeasured = write_job(tmp_path / "unmeasured", {"seed": 0}, {"val/acc": 0.5}, 10, {"reference": ref})
    nothing = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "report.py"), str(unmeasured)], capture_output=True, text=True
    )
    assert nothing.returncode == 2 and "none of the reference's checks is measured" in nothing.stderr
    helped = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "report.py"), "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "run dir" in helped.stdout


def test_wandb_payload_has_the_aggregate_figures_and_report(tmp_path):
    from types import SimpleNamespace

    from dlfoundations.results.analysis import wandb_extras
    from dlfoundations.results.summary import write_summary

    sweep = sweep_with(tmp_path, {4: [0.50, 0.51], 8: [0.55], 16: [0.58, 0.60], 64: [0.41]})
    write_summary(sweep, x="model.width", y=["test/err"])
    fake = SimpleNamespace(
        Table=lambda columns, data: ("table", columns, data), Image=lambda p: ("image", p), Html=lambda h: ("html", h)
    )
    payload = wandb_extras(sweep, fake)
    assert set(payload) == {"sweep_summary_agg", "sweep_figure/report", "sweep_report_md"}
    assert payload["sweep_summary_agg"][0] == "table" and len(payload["sweep_summary_agg"][2]) == 4  # 4 widths
    assert payload["sweep_figure/report"] == ("image", str(sweep / "report.png"))
    assert (
        payload["sweep_report_md"][0] == "html"
        and "all measured checks within tolerance" in payload["sweep_report_md"][1]
    )


def test_figure_panels_never_call_unmeasured_checks_within_tolerance():
    from dlfoundations.results.checks import FAIL, MISSING, PASS, panel_verdict

    assert panel_verdict([{"verdict": MISSING}, {"verdict": MISSING}]) == "not measured"
    assert panel_verdict([{"verdict": PASS}, {"verdict": MISSING}]) == "all measured within tolerance, 1 not measured"
    assert panel_verdict([{"verdict": FAIL}, {"verdict": PASS}]) == "1 out of tolerance"


def test_a_single_runs_report_figure_puts_measured_beside_published_and_keeps_the_whole_source(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    source = "Zhang et al. 2017, Understanding deep learning requires rethinking generalization; " * 2
    ref = {
        "source": source,
        "curves": [{"name": "test", "metric": "test/acc", "tolerance": 0.02, "points": [{"y": 0.1}]}],
    }
    run = write_job(tmp_path / "run", {}, {"test/acc": 0.11}, 100, {"reference": ref})
    drawn = {}
    real_close = plt.close

    def close(fig=None):
        if fig is not None and not drawn:  # report.png: what a reader sees on it
            (ax,) = fig.axes
            drawn["ticks"] = [t.get_text() for t in ax.get_xticklabels()]
            drawn["title"] = " ".join(fig.get_suptitle().split())  # wrapped over lines, not cut
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    write_report(run)
    assert drawn["ticks"] == ["measured", "published"]  # not a numeric axis around 0
    assert drawn["title"].endswith(" ".join(source.split()))  # the whole source, 170 characters
