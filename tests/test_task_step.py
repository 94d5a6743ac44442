"""The pieces of the training step that keep its per-step cost down: device-side epoch metrics, the
tasks' attribute assignment, the Trainer's default profiler. Each keeps the behaviour it replaces."""

import pytest
import torch
from lightning.pytorch.profilers import SimpleProfiler
from torch import nn

from dlfoundations.run.trainer import NullProfiler, build_trainer
from dlfoundations.tasks.base import Task
from dlfoundations.tasks.epoch_metrics import EpochMetrics


def _steps(replicas: int | None, sizes=(7, 7, 3), classes=4):
    gen = torch.Generator().manual_seed(0)
    lead = () if replicas is None else (replicas,)
    for n in sizes:
        logits = torch.randn(*lead, n, classes, generator=gen, requires_grad=True)
        labels = torch.randint(0, classes, (*lead, n), generator=gen)
        losses = torch.rand(lead, generator=gen) + 0.5
        yield losses, logits, labels


@pytest.mark.parametrize("replicas", [None, 3])
def test_epoch_metrics_sum_as_step_by_step_sums(replicas):
    metrics, loss_sum, correct, count = EpochMetrics(), 0.0, 0, 0
    for losses, logits, labels in _steps(replicas):
        metrics.update(losses, logits, labels)
        loss_sum = loss_sum + losses * labels.shape[-1]
        correct = correct + (logits.argmax(-1) == labels).sum(-1)
        count += labels.shape[-1]
    sums = metrics.sums()
    assert sums.shape == (3, *(() if replicas is None else (replicas,)))
    assert metrics.count == count == 17
    torch.testing.assert_close(sums[0], loss_sum, atol=1e-6, rtol=0)  # summed loss within 1e-6
    assert torch.equal(sums[1], correct.float())  # correct predictions: exact
    assert torch.equal(sums[2], torch.full_like(sums[2], 17.0))
    assert not bool(metrics.nonfinite().any())


def test_epoch_metrics_hold_no_graph_and_flag_the_replica_that_diverged():
    metrics = EpochMetrics()
    for k, (losses, logits, labels) in enumerate(_steps(3)):
        losses = losses * logits.mean((-1, -2))  # a loss with a graph, as in training
        if k == 1:
            losses = torch.where(torch.arange(3) == 2, float("nan"), losses)  # replica 2 diverges
        metrics.update(losses, logits, labels)
    assert losses.requires_grad and not metrics.sums().requires_grad
    assert metrics.nonfinite().tolist() == [False, False, True]


class _Tiny(Task):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 2)
        self.flag = "a"


def test_task_attributes_keep_nn_module_rules():
    task = _Tiny()
    task.flag = "b"  # a plain attribute re-assigned
    task.count = 3  # a new plain attribute
    assert (task.flag, task.count) == ("b", 3) and "flag" not in task._modules
    task.extra = nn.Linear(2, 1)  # a submodule is still registered as one
    assert "extra" in task._modules and "extra" not in task.__dict__
    task.weight = nn.Parameter(torch.zeros(2))
    assert "weight" in task._parameters
    task.weight = None  # None on a parameter's name clears the parameter, as nn.Module does
    assert task._parameters["weight"] is None and "weight" not in task.__dict__
    task.layer = None  # None on a submodule's name too
    assert task._modules["layer"] is None
    task.train(False)
    assert task.training is False and task.extra.training is False


def test_trainer_default_profiler_is_a_no_op_and_a_chosen_one_is_kept(tmp_path):
    base = {"_target_": "lightning.Trainer", "default_root_dir": str(tmp_path), "logger": False}
    trainer = build_trainer({**base, "profiler": None})
    assert isinstance(trainer.profiler, NullProfiler)
    with trainer.profiler.profile("a") as first, trainer.profiler.profile("b") as second:
        assert first is None and second is None
    assert isinstance(build_trainer({**base, "profiler": "simple"}).profiler, SimpleProfiler)
