"""Zhang et al.'s figures from a label-noise sweep: test error and epochs to fit vs corruption."""

import csv

import pytest
from omegaconf import OmegaConf

from dlfoundations.results.summary import write_summary
from dlfoundations.results.zhang import epochs_to_fit
from tests.synthetic_sweeps import make_sweep


def test_epochs_to_fit_is_the_first_epoch_at_full_train_accuracy():
    assert epochs_to_fit([(1, 0.1), (2, 0.9), (3, 1.0), (4, 1.0)]) == 3
    assert epochs_to_fit([(1, 0.1), (2, 0.9999)]) is None  # never fitted: no number
    assert epochs_to_fit([(1, 0.1), (2, 0.99)], fit_threshold=0.99) == 2


def test_label_noise_sweep_gives_test_error_and_epochs_to_fit_per_level(tmp_path):
    jobs, histories = [], []
    # level p, seed s: fits at epoch 10 + 20 p + s; test error 0.1 + 0.8 p.
    for p in (0.0, 0.5, 1.0):
        for s in (0, 1):
            fit = int(10 + 20 * p + s)
            histories.append([{"epoch": e, "train_eval/acc": 1.0 if e >= fit else 0.5} for e in range(1, 41)])
            jobs.append(({"data.label_noise": p, "seed": s}, {"test/acc": 1 - (0.1 + 0.8 * p)}, 100))
    sweep = make_sweep(tmp_path, jobs, histories=histories)
    summary = write_summary(sweep, x="data.label_noise", y=["test/err"], figures=["summary", "zhang"])
    assert summary["files"]["zhang.png"].read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((sweep / "zhang.csv").open()))
    assert [float(r["data.label_noise"]) for r in rows] == [0.0, 0.5, 1.0]
    assert [float(r["epochs_to_fit"]) for r in rows] == pytest.approx([10.5, 20.5, 30.5], abs=1e-12)
    assert [float(r["test/err"]) for r in rows] == pytest.approx([0.1, 0.5, 0.9], abs=1e-9)
    assert all(r["jobs_not_fitted"] == "0" and r["epochs_to_fit.n"] == "2" for r in rows)


def test_a_sweep_over_both_corruptions_gets_no_zhang_figure_that_would_pool_them(tmp_path, caplog):
    jobs = [
        ({"data.label_noise": p, "data.input_corruption": c}, {"test/acc": 0.5}, 100)
        for p in (0.0, 1.0)
        for c in ("shuffled_pixels", "gaussian")
    ]
    sweep = make_sweep(tmp_path, jobs, histories=[[{"epoch": 1, "train_eval/acc": 1.0}]] * 4)
    with caplog.at_level("WARNING"):
        write_summary(sweep, x="data.label_noise", y=["test/err"], figures=["summary", "zhang"])
    assert not (sweep / "zhang.csv").exists() and not (sweep / "zhang.png").exists()
    assert "sweep one corruption at a time" in caplog.text


@pytest.mark.parametrize("experiment", ["memorize", "memorize_cpu"])
def test_fitted_means_the_same_in_the_report_and_in_zhang_csv(experiment, tmp_path):
    from dlfoundations.results.checks import FAIL, PASS, check_curve
    from tests.helpers import make_cfg

    reference = OmegaConf.to_container(make_cfg([f"experiment={experiment}"], tmp_path).reference)
    # The random-label curve (memorize_cpu's other train-accuracy curves are its corruption sweeps').
    (train,) = [c for c in reference["curves"] if c["metric"] == "train_eval/acc" and "random labels" in c["name"]]
    for accuracy, fitted in ((0.9977, False), (1.0, True), (1.0 - 2**-24, True)):  # the last: float32 rounding
        (check,) = check_curve({None: [accuracy]}, train)["checks"]
        assert check["verdict"] == (PASS if fitted else FAIL), accuracy
        assert (epochs_to_fit([(1, accuracy)]) is not None) == fitted, accuracy


def test_the_figures_drawn_are_those_the_runs_were_configured_with(tmp_path):
    jobs = [({"data.label_noise": p}, {"test/acc": 1 - p}, 100) for p in (0.0, 0.5, 1.0)]
    histories = [[{"epoch": 1, "train_eval/acc": 1.0}]] * 3
    for figures, drawn in ((["summary", "zhang"], {"summary.png", "zhang.png"}), (["zhang"], {"zhang.png"})):
        sweep = make_sweep(tmp_path / "_".join(figures), jobs, {"figures": figures}, histories)
        write_summary(sweep, x="data.label_noise")  # figures=None: the runs' own list
        assert {p.name for p in sweep.glob("*.png")} == drawn, figures
    # Runs that name no figures (figures: null, or a sweep dir older than the key): each the sweep allows.
    sweep = make_sweep(tmp_path / "none", jobs, None, histories)
    write_summary(sweep, x="data.label_noise")
    assert {p.name for p in sweep.glob("*.png")} == {"summary.png", "zhang.png"}
    assert {p.name for p in sweep.glob("*.pdf")} == {"summary.pdf", "zhang.pdf"}  # vector beside each
    # Every experiment names its figures; the double-descent ones the heatmap, memorize Zhang's.
    from tests.helpers import make_cfg

    cfg = {e: make_cfg([f"experiment={e}"], tmp_path / "cfg").figures for e in ("double_descent", "memorize_cpu")}
    assert cfg == {"double_descent": ["summary", "heatmap", "report"], "memorize_cpu": ["summary", "zhang", "report"]}
