"""steps_per_call > 1 (several optimizer steps per Lightning training_step) trains exactly the
model that one step per call trains, and refuses what it cannot do."""

import pytest
import torch

from dlfoundations.data import BatchGroup, TensorBatchLoader
from dlfoundations.errors import UserError
from dlfoundations.train import main
from helpers import make_cfg

MLP = ["data=mnist1d", "data.train_size=470", "data.val_size=0", "data.test_size=100", "data.batch_size=50",
       "data.label_noise=0.2", "model=mlp", "model.width=32", "trainer.max_epochs=3",
       "callbacks.progress_bar=null", "callbacks.model_summary=null", "callbacks.training_curves=null",
       "scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,step_size:1,gamma:0.5}"]
CIFAR = ["data=cifar10", "data.subset_size=150", "data.batch_size=16", "model=cnn", "model.width=4",
         "trainer.max_epochs=2", "callbacks.progress_bar=null", "callbacks.model_summary=null",
         "callbacks.training_curves=null", "task.scheduler_interval=step",
         "scheduler={_target_:dlfoundations.tasks.schedules.InverseSqrtSteps,_partial_:true,every:4}"]


@pytest.mark.parametrize("steps_per_call", [1, 3, 7, 200])
def test_loader_groups_are_the_batches_of_one_step_per_call(steps_per_call):
    data, labels = torch.randn(95, 3), torch.arange(95)
    single = list(TensorBatchLoader((data, labels), 10, shuffle=True, seed=4))
    loader = TensorBatchLoader((data, labels), 10, shuffle=True, seed=4, steps_per_call=steps_per_call)
    groups = list(loader)
    assert len(groups) == len(loader) == -(-10 // steps_per_call)
    flat = [batch for group in groups for batch in group] if steps_per_call > 1 else groups
    assert all(isinstance(g, BatchGroup) for g in groups) == (steps_per_call > 1)
    assert len(flat) == len(single) == 10
    for (x, y), (x1, y1) in zip(flat, single):
        assert torch.equal(x, x1) and torch.equal(y, y1)


def _train(overrides, out, data_root=None):
    results = main(make_cfg(overrides, out, data_root))
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return results, state


@pytest.mark.parametrize("setup", ["mlp_epoch_scheduler", "cifar_augment_step_scheduler"])
def test_several_steps_per_call_train_the_same_model(setup, tmp_path, data_root, cifar_files_accepted):
    overrides = MLP if setup.startswith("mlp") else CIFAR
    one, state_one = _train([*overrides, "steps_per_call=1"], tmp_path / "one", data_root)
    four, state_four = _train([*overrides, "steps_per_call=4"], tmp_path / "four", data_root)
    assert one["global_step"] == four["global_step"] > 0
    assert one["epochs"] == four["epochs"]
    diff = max((state_one[k].float() - state_four[k].float()).abs().max().item() for k in state_one)
    assert diff <= 1e-6, f"max abs weight difference {diff} > 1e-6"
    for name, value in one["metrics"].items():
        assert four["metrics"][name] == pytest.approx(value, abs=1e-6), name
    assert one["metrics"]["train/loss"] > 0 and 0 <= one["metrics"]["train/acc"] <= 1


def test_max_steps_stops_inside_a_call(tmp_path):
    results = main(make_cfg([*MLP, "steps_per_call=4", "+trainer.max_steps=6"], tmp_path))
    assert results["global_step"] == 6


def test_per_step_callbacks_and_clipping_need_one_step_per_call(tmp_path):
    with pytest.raises(UserError, match=r"GradientFlow.on_after_backward needs one step per call: set steps_per_call=1"):
        main(make_cfg(["experiment=gradient_flow", "steps_per_call=2", "trainer.max_epochs=1"], tmp_path / "a"))
    with pytest.raises(UserError, match=r"trainer.gradient_clip_val=1.0 needs one optimizer step .*steps_per_call=1"):
        main(make_cfg([*MLP, "steps_per_call=2", "+trainer.gradient_clip_val=1.0"], tmp_path / "b"))


def test_divergence_is_caught_with_several_steps_per_call(tmp_path):
    with pytest.raises(UserError, match=r"diverged: the loss became NaN/inf in epoch 0 \(optimizer steps 0-9\)"):
        main(make_cfg([*MLP, "steps_per_call=4", "optimizer.lr=1e8", "scheduler=null"], tmp_path))
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()
