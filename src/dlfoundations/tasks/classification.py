"""Classification with cross-entropy for any ``nn.Module`` that maps inputs to logits."""

import logging
from collections.abc import Callable, Iterator
from typing import Any, cast

import torch
import torch.nn.functional as F
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn

from dlfoundations.data.base import eval_groups
from dlfoundations.errors import UserError
from dlfoundations.replicas.training import clip_norm_per_replica, replica_prefix
from dlfoundations.tasks.base import Task
from dlfoundations.tasks.epoch_metrics import EpochMetrics
from dlfoundations.tasks.optim import build_optimizer

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]
log = logging.getLogger(__name__)
DIVERGED = "diverged_replicas"  # checkpoint key: the replicas that diverged (index -> error)


class ClassificationModule(Task):
    """Trains ``net`` with cross-entropy and logs loss and accuracy.

    Metric names: ``train/loss``, ``train/acc`` (running averages over the epoch, in train mode),
    one ``<name>/loss``, ``<name>/acc`` pair per evaluation set of the validation loop (the
    datamodule's ``eval_sets``: ``val``, ``train_eval``, ``train_clean``) and of the test loop
    (``test_sets``, by default only ``test``).

    The training step uses Lightning's manual optimization: each ``training_step`` call pulls up to
    ``steps_per_call`` batches from the data iterator and takes one optimizer step per batch
    (``manual_backward``, the Lightning optimizer's ``step``, ``clip_gradients``), so per-step
    callback hooks, precision plugins (fp16 loss scaling), gradient clipping and DDP gradient
    synchronisation run at every step, and K > 1 trains exactly what K = 1 trains while paying
    Lightning's per-call cost once per K steps. Learning-rate schedulers are stepped here (per
    optimizer step or per epoch, ``scheduler_interval``); ``ReduceLROnPlateau`` steps per epoch on
    ``scheduler_monitor``.

    With ``replicas`` = R > 1, ``net`` is a :class:`~dlfoundations.replicas.StackedNet` and batches
    are stacked (inputs ``[R, B, ...]``, labels ``[R, B]``): the loss is the sum over replicas of
    each replica's mean loss, so an elementwise optimizer takes exactly each separate run's step;
    gradient clipping by norm is per replica. Every metric is logged per replica, as
    ``replica_<k>/<name>``. A replica whose loss becomes NaN/inf fails alone (:attr:`diverged`):
    from the end of that epoch its parameters are held at zero and its metrics logged as NaN, and
    the others train on, each still exactly its separate run; only when every replica has diverged
    does the fit stop, as a single run's does.
    """

    supports_replicas = True  # works on stacked replicas (dlfoundations.config.replicable)

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
        super().__init__()
        # The full resolved config goes to the loggers and config.yaml; the checkpoint keeps only
        # plain values so that it loads with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"task.scheduler_interval must be epoch or step, got {scheduler_interval!r}")
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}")
        if gradient_clip_algorithm not in ("norm", "value"):
            raise ValueError(f"task.gradient_clip_algorithm must be norm or value, got {gradient_clip_algorithm!r}")
        if gradient_clip_val is not None and gradient_clip_val < 0:
            raise ValueError(f"task.gradient_clip_val must be >= 0, got {gradient_clip_val}")
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        self.replicas = replicas
        self.scheduler_interval, self.scheduler_monitor = scheduler_interval, scheduler_monitor
        self.steps_per_call = steps_per_call
        self.gradient_clip_val, self.gradient_clip_algorithm = gradient_clip_val, gradient_clip_algorithm
        self.automatic_optimization = False
        # GPU speed options: torch.compile of the net (True, or a dict of torch.compile arguments)
        # and channels_last memory format for conv nets. Both leave the state dict keys unchanged.
        self.compile_options = ({} if compile is True else dict(compile)) if compile else None
        self.channels_last = channels_last
        self.eval_sets, self.test_sets = list(eval_sets), list(test_sets)
        self._metrics: dict[str, EpochMetrics] = {}
        self._compiled = False
        self._epoch_first_step = 0
        self._epoch_batches = 0
        # Replica -> why it failed (the error its separate run stops with); kept in checkpoints.
        self.diverged: dict[int, str] = {}
        self._frozen: Tensor | None = None  # their indices, once any

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def configure_model(self) -> None:
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.compile_options is not None and not self._compiled:
            self.net.compile(**self.compile_options)  # in place: compiled on the first batch
            self._compiled = True

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

    def on_validation_epoch_start(self) -> None:
        self._reset(self.eval_sets)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(self.eval_sets)

    def on_test_epoch_start(self) -> None:
        self._reset(self.test_sets)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self.test_sets)

    def on_train_epoch_start(self) -> None:
        self._reset(["train"])
        self._epoch_first_step = self.global_step
        self._epoch_batches = 0

    def training_step(self, dataloader_iter: Iterator) -> None:
        """Up to ``steps_per_call`` optimizer steps, one per batch pulled from ``dataloader_iter``."""
        optimizer = cast(LightningOptimizer, self.optimizers())  # configure_optimizers returns one
        schedulers = self._schedulers() if self.scheduler_interval == "step" else []
        # Looked up once per call, not per step: each is a chain of Lightning properties.
        precision, device, max_steps = self.trainer.precision_plugin, self.device, self.trainer.max_steps
        steps = self.steps_per_call if max_steps < 0 else min(self.steps_per_call, max_steps - self.global_step)
        taken = 0
        for _ in range(steps):  # each iteration is one optimizer step (global_step + 1)
            try:
                batch, _, _ = next(dataloader_iter)
            except StopIteration:
                break
            batch = tuple(t.to(device, non_blocking=True) for t in precision.convert_input(batch))
            loss = self._step(batch, ["train"])
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()  # on_before_optimizer_step hooks (and clipping, below) run inside
            if self._frozen is not None:
                self._hold_frozen()
            for scheduler in schedulers:
                scheduler.step()
            taken += 1
        self._epoch_batches += taken  # an nn.Module attribute: set once per call
        if self._epoch_batches >= self.trainer.num_training_batches:
            # Logged at the epoch's last call, so callbacks' on_train_epoch_end already see them.
            self._log_epoch(["train"])

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Called by Lightning inside optimizer.step(), after the callbacks' hook and, with fp16,
        # after unscaling: where automatic optimization clips.
        if self.gradient_clip_val and self.replicas > 1 and self.gradient_clip_algorithm == "norm":
            clip_norm_per_replica(self.net.parameters(), self.gradient_clip_val)
        elif self.gradient_clip_val:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=self.gradient_clip_val,
                gradient_clip_algorithm=self.gradient_clip_algorithm,
            )

    def _schedulers(self) -> list[Any]:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return list(schedulers) if isinstance(schedulers, list) else [schedulers]

    def on_validation_start(self) -> None:
        # In-fit validation runs before checkpoints are saved: stop before a diverged model is.
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self._raise_if_diverged()

    def on_train_epoch_end(self) -> None:
        self._raise_if_diverged()
        if self.scheduler_interval != "epoch":
            return
        for scheduler in self._schedulers():
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                monitor = self.scheduler_monitor
                value = self.trainer.callback_metrics.get(monitor) if monitor else None
                if value is None:
                    raise UserError(
                        f"ReduceLROnPlateau needs task.scheduler_monitor naming a logged metric "
                        f"(got {monitor!r}; logged: {sorted(self.trainer.callback_metrics)})"
                    )
                scheduler.step(value)
            else:
                scheduler.step()

    def _raise_if_diverged(self) -> None:
        metrics = self._metrics.get("train")
        if metrics is None or metrics.count == 0:
            return
        # One host sync per epoch: a NaN/inf loss at any step of the epoch.
        bad = metrics.nonfinite()
        if not bool(bad.any()):
            return
        message = (
            f"training diverged: the loss became NaN/inf in epoch {self.current_epoch} (optimizer steps "
            f"{self._epoch_first_step}-{self.global_step - 1}); lower optimizer.lr (or clip gradients with "
            "task.gradient_clip_val=1.0). Everything written so far is in the run dir"
        )
        if self.replicas == 1:
            raise UserError(message)
        new = [k for k in bad.nonzero().flatten().tolist() if k not in self.diverged]
        self.diverged.update({k: message for k in new})
        if len(self.diverged) == self.replicas:
            raise UserError(message.replace("the loss", "the loss of every replica", 1))
        if new:
            log.warning(
                "replica(s) %s diverged (NaN/inf loss) in epoch %d: recorded failed, held at zero; "
                "the other %d train on",
                new,
                self.current_epoch,
                self.replicas - len(self.diverged),
            )
            self._freeze()

    def failed_replicas(self) -> dict[int, str]:
        return dict(self.diverged)

    def _freeze(self) -> None:
        self._frozen = torch.tensor(sorted(self.diverged), device=self.device)
        self._hold_frozen()

    @torch.no_grad()
    def _hold_frozen(self) -> None:
        """The diverged replicas' parameters back to zero (after each optimizer step): their NaN/inf
        never reaches a metric, and nothing of theirs touches the other replicas' slices."""
        assert self._frozen is not None
        for p in self.net.parameters():
            p.index_fill_(0, self._frozen, 0.0)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[DIVERGED] = {str(k): v for k, v in self.diverged.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.diverged = {int(k): v for k, v in checkpoint.get(DIVERGED, {}).items()}

    def on_train_start(self) -> None:
        if self.diverged:  # resumed: the replicas that had diverged stay frozen
            self._freeze()

    # One loader per eval_groups group: train_eval and train_clean share their inputs' forward pass.
    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, eval_groups(self.eval_sets)[dataloader_idx])

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, eval_groups(self.test_sets)[dataloader_idx])

    def configure_optimizers(self):
        optimizer = build_optimizer(self.optimizer_factory, self.net)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}
