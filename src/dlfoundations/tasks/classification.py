"""Classification with cross-entropy for any ``nn.Module`` that maps inputs to logits, on the
training engine (:mod:`dlfoundations.tasks.engine`)."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlfoundations.data.base import eval_groups
from dlfoundations.replicas.training import replica_prefix
from dlfoundations.tasks.engine import GradientTask, OptimizerFactory, SchedulerFactory
from dlfoundations.tasks.epoch_metrics import EpochMetrics


class ClassificationModule(GradientTask):
    """Trains ``net`` with cross-entropy and logs loss and accuracy.

    Metric names: ``train/loss``, ``train/acc`` (running averages over the epoch, in train mode),
    one ``<name>/loss``, ``<name>/acc`` pair per evaluation set of the validation loop (the
    datamodule's ``eval_sets``: ``val``, ``train_eval``, ``train_clean``) and of the test loop
    (``test_sets``, by default only ``test``). Loss and predictions stay on the device and are
    summed once per epoch (:class:`~dlfoundations.tasks.epoch_metrics.EpochMetrics`).

    With ``replicas`` = R > 1 batches are stacked (inputs ``[R, B, ...]``, labels ``[R, B]``), the
    loss is the sum over replicas of each replica's mean loss, and every metric is logged per
    replica as ``replica_<k>/<name>`` (NaN for a replica that diverged). How the steps are taken:
    :class:`~dlfoundations.tasks.engine.GradientTask`.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 10,
        eval_sets: list[str] | tuple[str, ...] = ("val",),
        test_sets: list[str] | tuple[str, ...] = ("test",),
        scheduler_interval: str = "epoch",
        scheduler_monitor: str | None = None,
        steps_per_call: int = 1,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        compile: bool | dict = False,
        channels_last: bool = False,
        replicas: int = 1,
    ) -> None:
        super().__init__(
            net,
            optimizer,
            scheduler,
            scheduler_interval=scheduler_interval,
            scheduler_monitor=scheduler_monitor,
            steps_per_call=steps_per_call,
            gradient_clip_val=gradient_clip_val,
            gradient_clip_algorithm=gradient_clip_algorithm,
            compile=compile,
            channels_last=channels_last,
            replicas=replicas,
        )
        # The full resolved config goes to the loggers and config.yaml; the checkpoint keeps only
        # plain values so that it loads with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.eval_sets, self.test_sets = list(eval_sets), list(test_sets)
        self._metrics: dict[str, EpochMetrics] = {}

    def _step(self, batch: tuple[Tensor, ...], stages: list[str]) -> Tensor:
        """Forward ``x`` once and record each stage's loss and accuracy against its own labels
        (``batch = (x, *labels)``, one label tensor per stage); returns the first stage's loss."""
        x, *labels = batch
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.net(x)
        losses = [self._record(logits, y, stage) for y, stage in zip(labels, stages, strict=True)]
        return losses[0]

    def _record(self, logits: Tensor, y: Tensor, stage: str) -> Tensor:
        if self.replicas > 1:  # [R, B, C]: each replica's mean loss; their sum trains them all
            # Classes on dim 1 ([R, C, B]): the CPU's log-softmax over a last dim of 10 classes
            # takes 4x as long as over dim 1 (forward and backward, measured: benchmarks/RESULTS.md).
            losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)
            loss = losses.sum()
        else:
            loss = losses = F.cross_entropy(logits, y)
        metrics = self._metrics.get(stage)
        if metrics is None:
            metrics = self._metrics[stage] = EpochMetrics()
        metrics.update(losses, logits, y)
        return loss

    def _log_epoch(self, stages: list[str]) -> None:
        """Log the epoch's mean loss and accuracy of every stage that saw data (exact over DDP ranks:
        the sums are reduced, then divided)."""
        for stage in dict.fromkeys(stages):
            metrics = self._metrics.get(stage)
            if metrics is None or metrics.count == 0:
                continue
            sums = metrics.sums()
            if self.trainer.world_size > 1:
                sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
            means = {"loss": sums[0] / sums[2], "acc": sums[1] / sums[2]}
            # batch_size=1: one value per epoch (Lightning would otherwise inspect the batch).
            # The values are already exact and equal on every rank; sync_dist with a max over equal
            # values leaves them bit-identical and tells Lightning they are reduced (no warning).
            sync: dict[str, Any] = dict(
                sync_dist=self.trainer.world_size > 1,
                reduce_fx="max",
                on_step=False,
                on_epoch=True,
                add_dataloader_idx=False,
                batch_size=1,
            )
            for metric, value in means.items():
                # The progress bar shows the train loss and the accuracies (of replica 0).
                bar = metric == "acc" or stage == "train"
                if self.replicas == 1:
                    self.log(f"{stage}/{metric}", value, prog_bar=bar, **sync)
                    continue
                if self.diverged:  # a frozen replica's numbers are not a model's: NaN, never chance-level
                    value = value.clone()
                    value[list(self.diverged)] = float("nan")
                for k in range(self.replicas):
                    name = f"{replica_prefix(k)}{stage}/{metric}"
                    self.log(name, value[k], prog_bar=bar and k == 0, **sync)

    def _reset(self, stages: list[str]) -> None:
        for stage in stages:
            self._metrics.pop(stage, None)

    # The engine's questions.
    def train_loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        return self._step(batch, ["train"])

    def log_train_epoch(self) -> None:
        self._log_epoch(["train"])

    def train_loss_nonfinite(self) -> Tensor | None:
        metrics = self._metrics.get("train")
        return None if metrics is None or metrics.count == 0 else metrics.nonfinite()

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._reset(["train"])

    # Evaluation: one loader per eval_groups group (train_eval and train_clean share their inputs'
    # forward pass).
    def on_validation_epoch_start(self) -> None:
        self._reset(self.eval_sets)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(self.eval_sets)

    def on_test_epoch_start(self) -> None:
        self._reset(self.test_sets)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self.test_sets)

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, eval_groups(self.eval_sets)[dataloader_idx])

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, eval_groups(self.test_sets)[dataloader_idx])
