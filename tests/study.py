"""Helpers of the Optuna search tests (basic and SLURM launchers): run a small search, check its study."""

import csv
import json
import os
import subprocess
import sys

import yaml

from tests.helpers import REPO

# The shipped search (TPE, seed 0), its space narrowed to choices: lr=-1 is refused by validation,
# so those trials fail; with this seed both learning rates are drawn in 4 trials.
SEARCH = [
    "-m",
    "experiment=double_descent",
    "hparams_search=double_descent_optuna",
    "hydra.sweeper.n_trials=4",
    "optimizer.lr=choice(0.05,-1)",
    "optimizer.weight_decay=choice(0,0.001)",
    "data.train_size=200",
    "data.val_size=200",
    "data.test_size=200",
    "speed.steps_per_call=2",
    "trainer.max_epochs=5",
]


def run_search(tmp_path, *extra):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "DLF_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "src" / "train.py"),
            *SEARCH,
            *extra,
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def check_study(sweep, trials: int):
    table = list(csv.DictReader((sweep / "optuna_trials.csv").open()))
    assert [r["trial"] for r in table] == [str(i) for i in range(trials)]  # every trial ran: the study went on
    complete = [r for r in table if r["state"] == "COMPLETE"]
    failed = [r for r in table if r["state"] == "FAIL"]
    assert {r["optimizer.lr"] for r in failed} == {"-1"} and all("Invalid learning rate" in r["error"] for r in failed)
    assert {r["optimizer.lr"] for r in complete} == {"0.05"} and complete and failed
    for row in complete:  # the table's value is what the trial returned: validation, not test, accuracy
        results = json.loads((sweep / row["trial"] / "results.json").read_text())
        assert results["optimized_metric"] == "val/acc" and "test/acc" in results["metrics"]
        assert float(row["value"]) == results["optimized_value"] == results["metrics"]["val/acc"]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_params"]["optimizer.lr"] == 0.05
    assert best["best_value"] == max(float(r["value"]) for r in complete)
    assert (sweep / "failed.txt").read_text().count("Invalid learning rate") == len(failed)
