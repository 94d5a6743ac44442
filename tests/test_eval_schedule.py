"""Scheduled evaluation: the schedule's epochs, and the per-epoch values recorded at them only."""

import csv
import json
import math

import pytest

from dlfoundations.callbacks.eval_schedule import schedule_epochs
from dlfoundations.errors import UserError
from dlfoundations.results.heatmap import epoch_grid, write_heatmaps
from dlfoundations.run.train import main
from tests.helpers import end_single_run, make_cfg
from tests.synthetic_sweeps import make_sweep


def test_log_schedule_has_the_asked_number_of_distinct_epochs():
    epochs = schedule_epochs(500, 25, "log")
    assert len(epochs) == 25 and epochs[0] == 1 and epochs[-1] == 500 and epochs == sorted(set(epochs))
    ratios = [b / a for a, b in zip(epochs[10:], epochs[11:])]  # log-spaced where rounding no longer merges
    assert max(ratios) / min(ratios) < 1.15
    assert schedule_epochs(10, 25) == list(range(1, 11))
    assert schedule_epochs(100, 5, "linear") == [1, 26, 50, 75, 100]
    assert schedule_epochs(100, epochs=[3, 1, 200]) == [1, 3, 100]
    with pytest.raises(UserError, match="spacing"):
        schedule_epochs(100, 5, "cubic")


def test_a_run_evaluates_exactly_at_the_scheduled_epochs(tmp_path):
    cfg = make_cfg(
        [
            "experiment=double_descent",
            "model.width=4",
            "trainer.max_epochs=12",
            "data.train_size=200",
            "data.test_size=300",
            "data.eval_batch_size=300",
            "speed.steps_per_call=2",
            "callbacks.eval_schedule.num=5",
            "logger=csv",
        ],
        tmp_path,
    )
    main(cfg)
    saved = json.loads((tmp_path / "eval_history.json").read_text())
    expected = schedule_epochs(12, 5)
    assert saved["schedule"] == expected == [1, 2, 3, 6, 12]
    assert [h["epoch"] for h in saved["history"]] == expected
    for entry in saved["history"]:
        assert {"train_eval/acc", "train_clean/acc", "test/acc", "train/acc"} <= set(entry)
        assert all(0.0 <= entry[k] <= 1.0 for k in ("train_eval/acc", "train_clean/acc", "test/acc"))
    # The CSV logger saw test/acc from the validation loop at the scheduled epochs only (epoch is 0-based),
    # plus once from the final test loop.
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    evaluated = [int(r["epoch"]) + 1 for r in rows if r.get("train_clean/acc")]
    assert evaluated[: len(expected)] == expected and len(evaluated) == len(expected) + 1
    assert (tmp_path / "eval_curves.png").read_bytes()[:4] == b"\x89PNG"
    # A single run of an experiment with a reference ends with its report (width 4 is not a published point).
    end_single_run(cfg)
    assert "nothing measured that the reference covers" in (tmp_path / "report.md").read_text()


def test_width_by_epoch_grid_averages_seeds(tmp_path):
    histories, jobs = [], []
    for width in (4, 16):
        for seed in (0, 1):
            acc = 0.5 + 0.1 * seed + (0.2 if width == 16 else 0.0)
            histories.append([{"epoch": e, "test/acc": acc, "train_eval/acc": acc} for e in (1, 10, 100)])
            jobs.append(({"model.width": width, "seed": seed, "paths.log_dir": "logs"}, {"test/acc": acc}, width))
    sweep = make_sweep(tmp_path, jobs, histories=histories)
    grid = epoch_grid(sweep, "model.width")[()]
    assert grid["widths"] == [4.0, 16.0] and grid["epochs"] == [1, 10, 100]
    # test error, width 4: seeds 0.5 and 0.4 -> 0.45; width 16: 0.3 and 0.2 -> 0.25.
    assert grid["errors"]["test/err"][0] == pytest.approx([0.45] * 3, abs=1e-12)
    assert grid["errors"]["test/err"][1] == pytest.approx([0.25] * 3, abs=1e-12)
    written = write_heatmaps(sweep, "model.width")
    assert set(written) == {"heatmap.png", "epochwise_widest.png"}


def test_a_schedule_without_eval_sets_refuses_in_one_line(tmp_path):
    cfg = make_cfg(
        [
            "experiment=double_descent",
            "model.width=4",
            "trainer.max_epochs=2",
            "data.train_size=200",
            "data.test_size=300",
            "data.eval_sets=[]",
        ],
        tmp_path,
    )
    with pytest.raises(UserError, match="callbacks.eval_schedule has nothing to evaluate"):
        main(cfg)


def test_heatmap_cells_are_centred_on_the_swept_values():
    from dlfoundations.results.heatmap import cell_edges

    widths = [2, 3, 16, 64, 300]
    edges = cell_edges(widths, log=True)  # log axis: borders halfway between neighbours in log space
    assert edges[1:-1] == pytest.approx([math.sqrt(a * b) for a, b in zip(widths, widths[1:])], rel=1e-12)
    assert all(lo < w < hi for lo, w, hi in zip(edges, widths, edges[1:]))  # 64's cell: 32 to 139, not 40-88
    for w, lo, hi in ((widths[0], edges[0], edges[1]), (widths[-1], edges[-2], edges[-1])):
        assert math.sqrt(lo * hi) == pytest.approx(w, rel=1e-12)  # the outer cells centred on their value
    lin = cell_edges([0.0, 0.1, 0.3], log=False)
    assert lin == pytest.approx([-0.05, 0.05, 0.2, 0.4], abs=1e-12)
