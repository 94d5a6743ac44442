"""speed.steps_per_call=K (several optimizer steps per Lightning training_step, pulled from the data
iterator) trains exactly the model that K = 1 trains, with every per-step mechanism of Lightning:
callback hooks, gradient clipping, precision, DDP."""

import json

import pytest
import torch

from dlfoundations.data import TensorBatchLoader
from dlfoundations.data.augment import random_crop_flip
from dlfoundations.errors import UserError
from dlfoundations.run.train import main
from tests.helpers import CIFAR, MLP, make_cfg, run_cli

MLP_CONSTANT_LR = [o for o in MLP if not o.startswith("scheduler")]


def _augment(batch, generator):
    x, y = batch
    return random_crop_flip(x, 2, True, generator), y


def test_loader_yields_each_batch_once_and_augments_by_seed_epoch_and_batch():
    images, labels = torch.randn(95, 3, 8, 8), torch.arange(95)
    loader = TensorBatchLoader((images, labels), 10, shuffle=True, seed=4, transform=_augment)
    first = list(loader)
    assert len(first) == len(loader) == 10
    assert sorted(torch.cat([y for _, y in first]).tolist()) == list(range(95))
    again = TensorBatchLoader((images, labels), 10, shuffle=True, seed=4, transform=_augment)
    for (x, y), (x1, y1) in zip(first, again):  # a fresh loader (a resumed run) sees the same data
        assert torch.equal(x, x1) and torch.equal(y, y1)
    loader.sampler.set_epoch(1)
    second = list(loader)
    assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in second]))
    assert not torch.equal(first[0][0], second[0][0])


def _train(overrides, out, data_root=None):
    results = main(make_cfg(overrides, out, data_root))
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return results, state


# "The same model" is proven in float64, where rounding cannot grow into a visible difference.
F64 = "trainer.precision=64-true"


def _assert_same(one, state_one, other, state_other, atol=1e-10):
    assert one["global_step"] == other["global_step"] > 0
    assert one["epochs"] == other["epochs"]
    diff = max((state_one[k].double() - state_other[k].double()).abs().max().item() for k in state_one)
    assert diff <= atol, f"max abs weight difference {diff} > {atol}"
    for name, value in one["metrics"].items():
        assert other["metrics"][name] == pytest.approx(value, abs=atol), name


@pytest.mark.parametrize("setup", ["mlp_epoch_scheduler", "cifar_augment_step_scheduler"])
def test_several_steps_per_call_train_the_same_model(setup, tmp_path, data_root, cifar_files_accepted):
    overrides = [*(MLP if setup.startswith("mlp") else CIFAR), F64]
    one, state_one = _train([*overrides, "speed.steps_per_call=1"], tmp_path / "one", data_root)
    four, state_four = _train([*overrides, "speed.steps_per_call=4"], tmp_path / "four", data_root)
    _assert_same(one, state_one, four, state_four)
    assert one["metrics"]["train/loss"] > 0 and 0 <= one["metrics"]["train/acc"] <= 1


def test_gradient_clipping_and_bf16_with_several_steps_per_call(tmp_path):
    clip = [*MLP, "optimizer.lr=0.5", "task.gradient_clip_val=0.05", F64]
    one, state_one = _train([*clip, "speed.steps_per_call=1"], tmp_path / "one")
    five, state_five = _train([*clip, "speed.steps_per_call=5"], tmp_path / "five")
    _assert_same(one, state_one, five, state_five)
    unclipped, state_u = _train([*MLP, "optimizer.lr=0.5", "speed.steps_per_call=5", F64], tmp_path / "unclipped")
    diff = max((state_u[k] - state_five[k]).abs().max().item() for k in state_u)
    assert diff > 1e-3, f"clipping changed the weights by only {diff}: it did not act"
    # bf16 autocast has no float64 twin: a few steps (two calls of 5), within float32 rounding.
    bf16 = [*MLP, "trainer.precision=bf16-mixed", "trainer.max_steps=10"]
    b1, state_b1 = _train([*bf16, "speed.steps_per_call=1"], tmp_path / "bf16_one")
    b5, state_b5 = _train([*bf16, "speed.steps_per_call=5"], tmp_path / "bf16_five")
    _assert_same(b1, state_b1, b5, state_b5, atol=1e-6)


def test_gradient_flow_ratios_do_not_depend_on_steps_per_call(tmp_path):
    ratios = {}
    for k in (1, 7):
        out = tmp_path / f"k{k}"
        main(
            make_cfg(
                [
                    "experiment=gradient_flow",
                    f"speed.steps_per_call={k}",
                    "trainer.max_epochs=2",
                    "data.train_size=700",
                    "model.depth=6",
                ],
                out,
            )
        )
        ratios[k] = json.loads((out / "gradient_flow.json").read_text())
    assert ratios[1] == ratios[7]  # the hook ran after every backward, on the same gradients


def test_plateau_scheduler_steps_on_its_monitored_metric(tmp_path):
    # threshold=10 (relative): no epoch can improve on the best by 1000%, so with patience 0 every
    # epoch's train/loss counts as bad and the lr drops by `factor` at each of the 3 epoch ends.
    results = main(
        make_cfg(
            [
                *MLP_CONSTANT_LR,
                "speed.steps_per_call=5",
                "scheduler=plateau",
                "scheduler.factory.patience=0",
                "+scheduler.factory.threshold=10",
                "optimizer.lr=0.1",
            ],
            tmp_path,
        )
    )
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    lrs = [group["lr"] for group in state["optimizer_states"][0]["param_groups"]]
    assert results["epochs"] == 3 and lrs == [pytest.approx(0.1 * 0.1**3)], lrs


def test_max_steps_stops_inside_a_call(tmp_path):
    results = main(make_cfg([*MLP, "speed.steps_per_call=4", "trainer.max_steps=6"], tmp_path))
    assert results["global_step"] == 6


def test_trainer_clipping_points_to_the_task_option(tmp_path):
    with pytest.raises(UserError, match=r"trainer.gradient_clip_val=1.0: .*set task.gradient_clip_val=1.0"):
        main(make_cfg([*MLP, "trainer.gradient_clip_val=1.0"], tmp_path))


def test_divergence_is_caught_with_several_steps_per_call(tmp_path):
    with pytest.raises(UserError, match=r"diverged: the loss became NaN/inf in epoch 0 \(optimizer steps 0-9\)"):
        main(make_cfg([*MLP_CONSTANT_LR, "speed.steps_per_call=4", "optimizer.lr=1e8"], tmp_path))
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_with_several_steps_per_call(tmp_path):
    metrics = {}
    for k in (1, 3):
        log_dir = tmp_path / f"k{k}"
        proc = run_cli(
            [
                "experiment=memorize_cpu",
                f"speed.steps_per_call={k}",
                F64,
                "trainer=ddp",
                "trainer.devices=2",
                "trainer.accelerator=cpu",
                "trainer.max_epochs=2",
                "data.train_size=600",
                "print_config=false",
                "callbacks.progress_bar=null",
                f"paths.log_dir={log_dir}",
            ],
            tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        (run,) = (log_dir / "memorize_cpu" / "runs").iterdir()
        metrics[k] = json.loads((run / "results.json").read_text())
    assert metrics[1]["global_step"] == metrics[3]["global_step"] == 2 * 3  # 2 epochs x 300/100 batches per rank
    for name, value in metrics[1]["metrics"].items():
        assert metrics[3]["metrics"][name] == pytest.approx(value, abs=1e-10), name
