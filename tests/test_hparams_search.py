"""Optuna search (hparams_search=...): failing trials are recorded as failed, the study goes on, the
best trial and the study's table land in the sweep dir."""

import pytest

from tests.helpers import make_cfg
from tests.study import check_study, run_search


def test_the_search_optimizes_a_validation_metric_never_a_test_metric(tmp_path):
    cfg = make_cfg(["experiment=double_descent", "hparams_search=double_descent_optuna"], tmp_path)
    assert cfg.optimized_metric == "val/acc" and cfg.data.val_size > 0 and "val" in cfg.data.test_sets


@pytest.mark.slow
def test_optuna_search_with_the_basic_launcher(tmp_path):
    proc = run_search(tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]  # failed trials make the multirun exit 1
    check_study(tmp_path / "sweep", trials=4)
