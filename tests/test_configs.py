"""Every config in conf/model, conf/data and conf/experiment composes and runs (fast_dev_run)."""

import json
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from dlfoundations.callbacks.eval_schedule import schedule_epochs
from dlfoundations.config.objects import instantiate_group
from dlfoundations.run.train import main
from dlfoundations.run.trainer import build_trainer, trainer_kwargs
from tests.helpers import REPO, make_cfg

CONF = REPO / "conf"
# The data config each model runs on (its input shape); CIFAR-10 comes from files the tests write.
DATA_FOR_MODEL = {
    "alexnet": "mnist_bundled",
    "mlp": "mnist1d",
    "cnn1d": "mnist1d",
    "residual_mlp": "mnist1d",
    "random_features": "linear_regression",
}
# Models that need a task other than classification.
TASK_FOR_MODEL = {"random_features": ["task=ridge", "optimized_metric=test/err_tuned", "data.batch_size=300"]}
BN_MODELS = ["cnn", "nin", "resnet18", "resnet18k", "smallnet", "stm", "vgg16"]


def names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def run_fast(overrides: list[str], tmp_path: Path, data_dir: Path | None = None) -> dict:
    cfg = make_cfg([*overrides, "debug=fast"], tmp_path, data_dir)
    results = main(cfg)
    replicated = cfg.get("replicas", 1) > 1  # replicas.json on top, each replica's results.json below
    on_disk = json.loads((tmp_path / ("replicas.json" if replicated else "results.json")).read_text())
    returned = json.loads(json.dumps(results))
    assert on_disk == ({k: returned[k] for k in on_disk} if replicated else returned)
    assert math.isfinite(results["optimized_value"]), f"{results['optimized_metric']} was not logged"
    runs = (
        [json.loads((tmp_path / r["dir"] / "results.json").read_text()) for r in results["replicas"]]
        if replicated
        else [results]
    )
    assert len(runs) == cfg.get("replicas", 1)
    for run in runs:
        assert math.isfinite(run["optimized_value"]), f"{run['optimized_metric']} was not logged"
        if cfg.task._target_.endswith("ClassificationModule"):
            assert 0.0 <= run["metrics"]["test/acc"] <= 1.0
            assert run["global_step"] == 1  # fast_dev_run: exactly one optimizer step
    return results


def test_the_groups_are_all_there():
    assert {"mnist", "mnist_bundled", "mnist1d", "cifar10"} <= set(names("data"))
    assert {"alexnet", "mlp", *BN_MODELS} <= set(names("model"))
    assert {"memorize", "memorize_cpu"} <= set(names("experiment"))
    assert {"default", "cpu", "gpu", "ddp"} <= set(names("trainer"))
    assert {"csv", "tensorboard", "wandb"} <= set(names("logger"))


def test_every_model_config_has_a_data_config_here():
    assert set(names("model")) == set(DATA_FOR_MODEL) | set(BN_MODELS)


MODEL_RUNS = [(m, None) for m in sorted(DATA_FOR_MODEL)] + [(m, bn) for m in BN_MODELS for bn in (True, False)]


@pytest.mark.parametrize(("model", "batch_norm"), MODEL_RUNS)
def test_every_model_config_runs_with_and_without_bn(model, batch_norm, tmp_path, data_root, cifar_files_accepted):
    data = DATA_FOR_MODEL.get(model, "cifar10")
    extra = ["model.width=0.125"] if model == "alexnet" else TASK_FOR_MODEL.get(model, [])
    if batch_norm is not None:
        extra.append(f"model.batch_norm={batch_norm}")
    results = run_fast([f"model={model}", f"data={data}", "data.batch_size=8", *extra], tmp_path, data_root)
    assert results["num_params"] > 0


@pytest.mark.parametrize("data", names("data"))
def test_every_data_config_runs(data, tmp_path, data_root, cifar_files_accepted):
    model = "random_features" if data == "linear_regression" else "mlp"
    run_fast([f"data={data}", f"model={model}", *TASK_FOR_MODEL.get(model, [])], tmp_path, data_dir=data_root)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", names("experiment"))
def test_every_experiment_config_runs(experiment, tmp_path, data_root, cifar_files_accepted):
    run_fast([f"experiment={experiment}"], tmp_path, data_dir=data_root)


def test_memorize_is_the_seeds_setup(tmp_path):
    cfg = make_cfg(["experiment=memorize"], tmp_path)
    assert cfg.data._target_.endswith("MNISTDataModule")
    assert (cfg.data.subset_size, cfg.data.label_noise, cfg.data.label_noise_kind) == (6000, 1.0, "uniform")
    assert cfg.data.batch_size == 64 and cfg.data.normalize is False
    assert "train_eval" in cfg.data.eval_sets  # train accuracy on all 6,000 images, eval mode
    assert cfg.model._target_.endswith("MNISTAlexNet") and cfg.model.width == 1.0
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (0.1, 0.0, 0.0)
    assert cfg.trainer.max_epochs == 150 and cfg.seed == 0


@pytest.mark.parametrize("experiment", names("experiment"))
def test_every_experiment_composes_with_every_callbacks_option(experiment, tmp_path):
    # Lightning refuses some combinations only when the Trainer is built (a progress-bar callback
    # with an experiment's enable_progress_bar=false): build it for each option.
    for option in names("callbacks"):
        cfg = make_cfg([f"experiment={experiment}", f"callbacks={option}", "debug=fast"], tmp_path)
        callbacks = instantiate_group(cfg.callbacks, "callbacks")
        trainer = build_trainer(trainer_kwargs(cfg.trainer), callbacks=callbacks, logger=False)
        assert all(c in trainer.callbacks for c in callbacks), (experiment, option)


@pytest.mark.parametrize("experiment", names("experiment"))
def test_every_experiment_keeps_its_last_checkpoint(experiment, tmp_path):
    # What a killed or pre-empted job resumes from, and what eval.py ckpt_path=<run> tests.
    callbacks = make_cfg([f"experiment={experiment}"], tmp_path).callbacks
    assert callbacks.model_checkpoint.save_last is True and callbacks.rng_state is not None, experiment


@pytest.mark.parametrize("option", ["default", "none", "sweep"])
def test_a_sweep_experiment_runs_with_a_callbacks_option(option, tmp_path):
    run_fast(
        ["experiment=double_descent", f"callbacks={option}", "data.train_size=200", "data.test_size=100"], tmp_path
    )


class LastCheckpointProbe(Callback):
    """Records, at the start of each epoch after the first, the epoch last.ckpt holds (None: none yet)."""

    seen: list[int | None] = []

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch > 0:
            epoch = torch.load(self.path, weights_only=False)["epoch"] if self.path.is_file() else None
            LastCheckpointProbe.seen.append(epoch)


def test_a_double_descent_job_resumes_from_its_last_checkpoint(tmp_path):
    run = ["experiment=double_descent", "data.train_size=200", "data.test_size=100", "model.width=8", "replicas=2"]
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"

    def probe(run_dir: Path) -> list[str]:
        path = run_dir / "checkpoints" / "last.ckpt"
        return ["+callbacks.probe._target_=tests.test_configs.LastCheckpointProbe", f"+callbacks.probe.path={path}"]

    LastCheckpointProbe.seen = []
    # Evaluated at epochs 1, 2 and 5: the experiment checkpoints at those (its yaml says why), the
    # model_checkpoint option by itself after every epoch, also where no evaluation runs.
    schedule = ["trainer.max_epochs=5", "callbacks.eval_schedule.num=3"]
    assert schedule_epochs(5, 3) == [1, 2, 5]
    main(make_cfg([*run, "replicas=1", *schedule, *probe(tmp_path / "as_shipped")], tmp_path / "as_shipped"))
    assert LastCheckpointProbe.seen == [0, 1, 1, 1]  # 0-based epochs in last.ckpt at the start of epochs 2..5
    LastCheckpointProbe.seen = []
    every = "callbacks.model_checkpoint.save_on_train_epoch_end=true"
    main(make_cfg([*run, "replicas=1", *schedule, *probe(tmp_path / "every"), every], tmp_path / "every"))
    assert LastCheckpointProbe.seen == [0, 1, 2, 3]  # written after every epoch, not only at the end
    main(make_cfg([*run, "trainer.max_epochs=3"], tmp_path / "part"))
    assert len(list(last.parent.glob("epoch_*.ckpt"))) == 1  # and the newest epoch, no pile-up
    resumed = main(make_cfg([*run, "trainer.max_epochs=4", f"ckpt_path={last}"], tmp_path / "resumed"))
    assert (resumed["epochs"], resumed["global_step"]) == (4, 8)  # 200 items in batches of 100: 2 steps an epoch
