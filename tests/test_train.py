"""The training path end to end: real (short) runs, artifacts, errors, the CLI."""

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from dlfoundations.errors import UserError
from dlfoundations.run.train import main
from dlfoundations.run.trainer import trainer_kwargs
from tests.helpers import make_cfg, run_cli

SHORT_RANDOM_LABELS = [
    "data=mnist1d",
    "data.train_size=500",
    "data.val_size=0",
    "data.test_size=300",
    "data.label_noise=1.0",
    "data.batch_size=50",
    "data.eval_sets=[train_eval]",
    "model=mlp",
    "model.width=256",
    "optimizer=adam",
    "optimizer.lr=0.003",
    "trainer.max_epochs=30",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.training_curves.metrics=[train_eval/acc,train_eval/loss]",
]


def epoch_metric(run_dir: Path, name: str) -> list[float]:
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    return [float(r[name]) for r in rows if r.get(name)]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("short_run")
    return out, main(make_cfg(SHORT_RANDOM_LABELS, out))


def test_train_accuracy_rises_on_random_labels(short_run):
    run_dir, results = short_run
    acc = epoch_metric(run_dir, "train_eval/acc")
    assert len(acc) == 30  # measured every epoch on the whole training set
    # Memorization: from chance to far above it on labels that carry no signal ...
    assert acc[0] < 0.25, f"first-epoch train acc {acc[0]:.3f} should be near chance (0.1)"
    assert acc[-1] > 0.6, f"last-epoch train acc {acc[-1]:.3f} should exceed 0.6"
    # ... while accuracy on the true test labels stays at chance: 0.1 +- 0.08 (4.6 sigma at n=300).
    assert abs(results["metrics"]["test/acc"] - 0.1) < 0.08


def test_a_run_writes_config_metrics_checkpoint_plot_and_results(short_run):
    run_dir, results = short_run
    assert "label_noise: 1.0" in (run_dir / "config.yaml").read_text()
    assert (run_dir / "config_tree.log").read_text().startswith("config")
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 30 * 10  # 30 epochs of 500 samples in batches of 50
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["metrics"]["train_eval/acc"] == pytest.approx(epoch_metric(run_dir, "train_eval/acc")[-1])
    assert saved["optimized_metric"] == "test/acc" and saved["epochs"] == 30
    assert not list(run_dir.glob(".*.tmp*")) and not list(run_dir.glob(".results*"))  # no temp leftovers


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    quick = [*SHORT_RANDOM_LABELS, "trainer.max_epochs=2"]
    a = main(make_cfg(quick, tmp_path / "a"))["metrics"]
    b = main(make_cfg(quick, tmp_path / "b"))["metrics"]
    c = main(make_cfg([*quick, "seed=1"], tmp_path / "c"))["metrics"]
    assert a == b
    assert a != c


def test_gpus_without_cuda_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    cfg = make_cfg(["trainer.gpus=1"], tmp_path)
    with pytest.raises(UserError, match=r"trainer.gpus=1 .* no|trainer.gpus=1 .*0 CUDA") as err:
        trainer_kwargs(cfg.trainer)
    assert "trainer=cpu" in str(err.value)
    with pytest.raises(UserError, match="trainer=cpu"):
        trainer_kwargs(make_cfg(["trainer=gpu"], tmp_path).trainer)
    assert trainer_kwargs(make_cfg(["trainer.gpus=0"], tmp_path).trainer)["accelerator"] == "cpu"


def test_gpus_maps_to_accelerator_and_devices(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    kwargs = trainer_kwargs(make_cfg(["trainer.gpus=2"], tmp_path).trainer)
    assert (kwargs["accelerator"], kwargs["devices"]) == ("gpu", 2) and "gpus" not in kwargs


def test_cli_gpu_error_has_no_traceback(tmp_path):
    proc = run_cli(["experiment=memorize_cpu", "trainer.gpus=1", f"paths.log_dir={tmp_path}"], tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "trainer=cpu" in lines[0]


@pytest.mark.slow
def test_cli_label_noise_multirun_contains_a_failing_job(tmp_path):
    # No explicit log or sweep dir: the sweep dir resolves from the launch dir, before any job runs.
    proc = run_cli(["-m", "experiment=memorize_cpu", "data.label_noise=0,0.2,1.5", "debug=fast"], tmp_path)
    assert proc.returncode == 1
    assert "error: 1 of 3 sweep jobs failed" in proc.stderr and "Traceback" not in proc.stderr
    (sweep,) = (tmp_path / "logs" / "memorize_cpu" / "multiruns").iterdir()
    for job, noise in zip(("0", "1"), (0.0, 0.2)):
        assert yaml.safe_load((sweep / job / "config.yaml").read_text())["data"]["label_noise"] == noise
        assert "test/acc" in json.loads((sweep / job / "results.json").read_text())["metrics"]
    failure = json.loads((sweep / "2" / "failure.json").read_text())
    assert "label_noise=1.5" in failure["error"] and not (sweep / "2" / "results.json").exists()
    assert len((sweep / "summary.csv").read_text().splitlines()) == 3  # header + the two that finished
    assert "job 2" in (sweep / "failed.txt").read_text()


@pytest.mark.slow
def test_cli_run_dirs_are_unique_and_loggers_write(tmp_path):
    args = [
        "experiment=memorize_cpu",
        "debug=short",
        f"paths.log_dir={tmp_path}",
        "print_config=false",
        "logger=[csv,tensorboard,wandb]",
    ]
    home = tmp_path / "home"
    home.mkdir()
    # No W&B key anywhere (fresh HOME, no env var): the W&B logger must go offline, not prompt.
    env = {"HOME": str(home), "WANDB_API_KEY": "", "WANDB_MODE": ""}
    first, second = run_cli(args, tmp_path, **env), run_cli(args, tmp_path, **env)
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-2000:]
    runs = sorted((tmp_path / "memorize_cpu" / "runs").iterdir())
    assert len(runs) == 2  # two runs, two dirs, even when started in the same second
    for run in runs:
        assert (run / "metrics.csv").exists() and (run / "results.json").exists()
        assert list((run / "tensorboard").glob("events.out.tfevents.*"))
        assert list((run / "wandb").glob("offline-run-*/run-*.wandb"))
        # memorize_cpu has a reference: Hydra's run callback ends a single run with its report.
        assert "Reproduction report" in (run / "report.md").read_text()


def test_wandb_jobs_of_a_multirun_share_a_group(tmp_path):
    single = make_cfg(["logger=wandb"], tmp_path)
    assert single.logger.wandb.group is None
    sweep = make_cfg(["logger=wandb", "hydra.mode=MULTIRUN", f"hydra.sweep.dir={tmp_path}/sweep_42"], tmp_path)
    assert sweep.logger.wandb.group == "sweep_42"


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_one_run_dir(tmp_path):
    proc = run_cli(
        [
            "experiment=memorize_cpu",
            "trainer=ddp",
            "trainer.devices=2",
            "trainer.accelerator=cpu",
            "debug=short",
            "print_config=false",
            f"paths.log_dir={tmp_path}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = list((tmp_path / "memorize_cpu" / "runs").iterdir())
    assert len(runs) == 1  # the second rank reuses rank 0's run dir instead of making its own
    assert (runs[0] / "report.md").is_file()  # written once, by rank 0
    results = json.loads((runs[0] / "results.json").read_text())
    assert results["global_step"] == 2 * 3  # 2 epochs x 3 batches per rank
    rows = list(csv.DictReader(open(runs[0] / "metrics.csv")))
    assert len({r["epoch"] for r in rows if r.get("train/loss")}) == 2  # one writer: no duplicate rows
    assert len([r for r in rows if r.get("train/loss")]) == 2


def test_an_empty_logger_or_callbacks_selection_means_none(tmp_path):
    # The template's way to turn them off (logger=[]) is the same as logger=none.
    cfg = make_cfg(["logger=[]", "callbacks=[]"], tmp_path)
    assert cfg.logger is None and cfg.callbacks is None
    short = ["data=mnist1d", "data.train_size=100", "data.test_size=50", "trainer.max_epochs=1", "logger=[]"]
    results = main(make_cfg(short, tmp_path))
    assert 0.0 <= results["metrics"]["test/acc"] <= 1.0 and not (tmp_path / "metrics.csv").exists()
