"""Evaluating checkpoints: python src/eval.py, train=false ckpt_path=..., and ckpt_path=last."""

import csv
import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from omegaconf import open_dict

from dlfoundations.errors import UserError
from dlfoundations.run.train import main
from tests.helpers import REPO, make_cfg

RUN = [
    "experiment=memorize_cpu",
    "data.train_size=500",
    "data.val_size=100",
    "data.test_size=200",
    "data.label_noise=0",
    "model.width=128",
    "optimizer.lr=0.003",
    "trainer.max_epochs=4",
    "callbacks.stop_when_memorized=null",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]
EXACT = 1e-6  # same weights, same data, same batches on CPU: the numbers agree to float rounding


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short MNIST-1D MLP run with its last.ckpt and results."""
    root = tmp_path_factory.mktemp("trained")
    run_dir = root / "run"
    results = main(make_cfg(RUN, run_dir, root / "data"))
    return run_dir, results["metrics"], root / "data"


def eval_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, str(REPO / "src" / "eval.py"), *args, "print_config=false"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def newest_eval_dir(log_dir: Path) -> Path:
    return max((log_dir / "eval" / "runs").iterdir(), key=lambda p: p.stat().st_mtime_ns)


def read_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path)))


@pytest.mark.slow
def test_eval_reproduces_the_runs_test_metrics_and_predicts(trained, tmp_path):
    run_dir, metrics, data_dir = trained
    cfg = make_cfg(RUN, tmp_path / "unused", data_dir)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup()
    torch.save(datamodule.splits.x_test[:7].clone(), tmp_path / "inputs.pt")
    logs = tmp_path / "logs"

    proc = eval_cli(
        [
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            f"paths.log_dir={logs}",
            f"paths.data_dir={data_dir}",
            "predict.split=test",
            f"predict.input={tmp_path / 'inputs.pt'}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = newest_eval_dir(logs)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["run_dir"] == str(run_dir.resolve())
    assert results["checkpoint"]["path"] == str((run_dir / "checkpoints" / "last.ckpt").resolve())
    assert results["checkpoint"]["global_step"] == 4 * 5  # 4 epochs of 500 samples in batches of 100
    assert results["checkpoint"]["epoch_index"] == 3  # the 4th epoch's end: its 0-based index, named so
    for name in ("test/acc", "test/loss"):
        assert abs(results["metrics"][name] - metrics[name]) <= EXACT, name

    rows = read_rows(out / "predictions_test.csv")
    assert len(rows) == 200 and [int(r["index"]) for r in rows] == list(range(200))
    probs = torch.tensor([[float(r[f"prob_{c}"]) for c in range(10)] for r in rows], dtype=torch.float64)
    predicted = torch.tensor([int(r["predicted"]) for r in rows])
    labels = torch.tensor([int(r["label"]) for r in rows])
    assert (probs.sum(1) - 1).abs().max() <= 1e-5
    assert torch.equal(probs.argmax(1), predicted)
    assert torch.equal(labels, datamodule.splits.y_test)
    assert abs((predicted == labels).double().mean().item() - metrics["test/acc"]) <= EXACT

    # The file's inputs are the first 7 test inputs: the same predictions as the split's first rows.
    given = read_rows(out / "predictions_input.csv")
    assert len(given) == 7 and "label" not in given[0]
    given_probs = torch.tensor([[float(r[f"prob_{c}"]) for c in range(10)] for r in given], dtype=torch.float64)
    assert (given_probs - probs[:7]).abs().max() <= EXACT

    # A run dir (its last.ckpt), with an override: the extra test set is evaluated and named right.
    proc = eval_cli(
        [f"ckpt_path={run_dir}", f"paths.log_dir={logs}", f"paths.data_dir={data_dir}", "data.test_sets=[test,val]"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    second = newest_eval_dir(logs)
    assert second != out
    results = json.loads((second / "eval_results.json").read_text())
    assert results["overrides"] == ["data.test_sets=[test,val]"]
    for name in ("test/acc", "test/loss", "val/acc", "val/loss"):  # val: the run's last validation, same weights
        assert abs(results["metrics"][name] - metrics[name]) <= EXACT, name


@pytest.mark.slow
def test_eval_mistakes_are_one_line_errors(trained, tmp_path):
    run_dir, _, data_dir = trained
    np.savez(tmp_path / "wrong.npz", x=np.zeros((3, 41), dtype=np.float32))
    common = [f"paths.log_dir={tmp_path / 'logs'}", f"paths.data_dir={data_dir}"]
    cases = {
        "model.width=64": r"^error: ckpt_path=.*last.ckpt was saved from another model \(other shapes for",
        f"predict.input={tmp_path / 'wrong.npz'}": (
            r"^error: predict.input=.*wrong.npz holds a tensor of shape \[3, 41\]; the model takes \[N, 40\]"
        ),
        "experiment=memorize": r"^error: experiment=memorize: eval rebuilds the run from its own config",
        # The model is the run's; the data is what does not fit it.
        "data=mnist_bundled": (
            r"^error: data=mnist_bundled gives inputs of shape \[1, 28, 28\], and this run's model was trained "
            r"on inputs of shape \[40\]; evaluate it on data of that shape"
        ),
        f"paths.log_dir={tmp_path / 'wrong.npz' / 'logs'}": r"^error: cannot write .*wrong.npz/logs/eval/runs/.*",
    }
    for override, message in cases.items():
        proc = eval_cli([f"ckpt_path={run_dir}", *common, override], tmp_path)  # the last log_dir wins
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert len(errors) == 1 and re.match(message, errors[0]), errors
    proc = eval_cli([f"ckpt_path={tmp_path / 'nowhere'}", *common], tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(
        f"error: ckpt_path={tmp_path / 'nowhere'} does not exist"
    )


def test_train_false_tests_the_checkpoints_weights(trained, tmp_path):
    run_dir, metrics, data_dir = trained
    last = run_dir / "checkpoints" / "last.ckpt"
    assert abs(metrics["test/loss"] - math.log(10)) > 0.1  # a trained net: far from chance's ln(10)
    tested_run = main(make_cfg([*RUN, "train=false", f"ckpt_path={last}"], tmp_path / "tested", data_dir))
    tested = tested_run["metrics"]
    for name in ("test/acc", "test/loss"):
        assert abs(tested[name] - metrics[name]) <= EXACT, name
    assert tested_run["epochs"] == 0 and tested_run["checkpoint"] == str(last)  # which weights were tested
    # Resuming a finished run trains no further and tests the restored weights.
    resumed = main(make_cfg([*RUN, f"ckpt_path={last}"], tmp_path / "resumed", data_dir))
    assert resumed["global_step"] == 20 and abs(resumed["metrics"]["test/loss"] - metrics["test/loss"]) <= EXACT
    for extra, message in (
        (["train=false"], "train=false would test an untrained model"),
        (["train=false", "test=false", f"ckpt_path={last}"], "train=false and test=false leave nothing"),
        (["train=false", f"ckpt_path={last}", f"weights={last}"], "which weights to test is ambiguous"),
    ):
        with pytest.raises(UserError, match=message):
            main(make_cfg([*RUN, *extra], tmp_path / "refused", data_dir))


def _run_in(logs: Path, name: str, overrides: list[str], data_dir: Path, mtime: int) -> Path:
    out = logs / "memorize_cpu" / "runs" / name
    main(make_cfg([*RUN, "trainer.max_epochs=1", *overrides], out, data_dir))
    for ckpt in out.glob("checkpoints/*.ckpt"):
        os.utime(ckpt, (mtime, mtime))  # a fixed order, newest last
    return out


def test_ckpt_path_last_resumes_only_a_run_with_the_same_config(trained, tmp_path, caplog):
    data_dir, logs = trained[2], tmp_path / "logs"
    same = _run_in(logs, "a_same", [], data_dir, 1_000)
    _run_in(logs, "b_short", ["debug=short"], data_dir, 2_000)
    _run_in(logs, "c_other_lr", ["optimizer.lr=0.01"], data_dir, 3_000)
    fast = _run_in(logs, "d_fast", ["debug=fast"], data_dir, 4_000)
    assert not list(fast.rglob("*.ckpt"))  # debug=fast writes no checkpoint

    def resume(overrides: list[str], name: str) -> dict:
        cfg = make_cfg([*RUN, "trainer.max_epochs=2", "ckpt_path=last", *overrides], tmp_path / name, data_dir)
        with open_dict(cfg):
            cfg.paths.log_dir = str(logs)
        return main(cfg)

    caplog.set_level(logging.INFO, logger="dlfoundations.run.checkpoints")
    results = resume([], "resumed")
    log = caplog.text
    assert f"resuming {same / 'checkpoints' / 'last.ckpt'}" in log
    assert "skipped the newer run c_other_lr, whose config differs in optimizer.lr (0.01 there, 0.003 here)" in log
    assert "skipped the newer run b_short, whose config differs in trainer.limit_test_batches" in log
    assert results["epochs"] == 2 and results["global_step"] == 2 * 5  # one more epoch on top of a_same's

    with pytest.raises(
        UserError,
        match=r"^ckpt_path=last: no run under .* has this config; the newest, c_other_lr, "
        r"differs in .*seed \(0 there, 1 here\)",
    ) as err:
        resume(["seed=1"], "refused")
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_eval_multirun_writes_one_result_per_job_and_no_false_failures(trained, tmp_path):
    run_dir, metrics, data_dir = trained
    sweep = tmp_path / "sweep"
    proc = eval_cli(
        [
            "-m",
            f"ckpt_path={run_dir}",
            f"paths.data_dir={data_dir}",
            f"hydra.sweep.dir={sweep}",
            "data.test_sets=[test],[val]",
        ],
        tmp_path,
    )
    assert proc.returncode == 0 and "failed" not in proc.stderr, proc.stderr[-2000:]
    assert not (sweep / "failed.txt").exists()  # the training sweep summary would call every eval job failed
    for job, name in (("0", "test/acc"), ("1", "val/acc")):
        results = json.loads((sweep / job / "eval_results.json").read_text())
        assert abs(results["metrics"][name] - metrics[name]) <= EXACT


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text", r"is not a readable \.pt file \(KeyError"),  # a text file named .pt
        ({"y": torch.zeros(2, 40)}, r"holds \['y'\], no x; save the inputs as x"),
        (torch.zeros(2, 40, dtype=torch.complex64), r"holds torch.complex64 values"),
        (torch.full((2, 40), float("nan")), r"holds 80 NaN/inf value\(s\) of 80"),
        (torch.tensor([[0.0] * 39 + [float("inf")]]), r"holds 1 NaN/inf value\(s\) of 40"),
    ],
)
def test_predict_inputs_that_would_give_meaningless_predictions_are_refused(content, message, tmp_path):
    from dlfoundations.run.predict import load_inputs

    path = tmp_path / "inputs.pt"
    if content == "text":
        path.write_text("hello\n")
    else:
        torch.save(content, path)
    with pytest.raises(UserError, match=message):
        load_inputs(str(path), [40], torch.float32)
    np.savez(tmp_path / "only_y.npz", y=np.zeros((2, 40)))
    with pytest.raises(UserError, match=r"holds \['y'\], no x"):  # never guessed from its only array
        load_inputs(str(tmp_path / "only_y.npz"), [40], torch.float32)
    torch.save({"x": torch.ones(2, 40)}, tmp_path / "ok.pt")
    assert torch.equal(load_inputs(str(tmp_path / "ok.pt"), [40], torch.float32), torch.ones(2, 40))


@pytest.mark.parametrize("text", ["model: [unclosed\n", "- a list\n", "seed: 3\n"])
def test_a_malformed_run_config_is_one_line(text, tmp_path):
    from dlfoundations.run.eval import run_config

    (tmp_path / "config_unresolved.yaml").write_text(text)
    with pytest.raises(UserError, match=r"config_unresolved.yaml is not a (readable|run) config") as err:
        run_config(tmp_path)
    assert "\n" not in str(err.value)
