"""Classification with cross-entropy for any ``nn.Module`` that maps inputs to logits."""

from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlfoundations.data.loader import BatchGroup
from dlfoundations.errors import UserError
from dlfoundations.tasks.optim import build_optimizer

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
# Callback hooks that run once per optimizer step; steps_per_call > 1 does not call them.
PER_STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step", "on_before_zero_grad")


@dataclass
class _Totals:
    """Per-epoch sums of one stage, kept on the device: a few tensor ops per step, no host sync."""

    loss_sum: Tensor
    correct: Tensor
    count: int = 0


class ClassificationModule(L.LightningModule):
    """Trains ``net`` with cross-entropy and logs loss and accuracy.

    Metric names: ``train/loss``, ``train/acc`` (running averages over the epoch, in train mode),
    one ``<name>/loss``, ``<name>/acc`` pair per evaluation set of the validation loop (the
    datamodule's ``eval_sets``: ``val``, ``train_eval``, ``train_clean``) and of the test loop
    (``test_sets``, by default only ``test``).

    ``steps_per_call=K > 1`` (the datamodule then yields a ``BatchGroup`` of K batches) runs K optimizer
    steps, each on its own batch in the same order, inside one ``training_step`` call: the same
    training, without Lightning's per-step machinery, which costs more than a step of a small
    model. Per-step callback hooks (``PER_STEP_HOOKS``), gradient clipping, gradient accumulation,
    fp16 loss scaling and multi-device training need ``K = 1``, and say so.
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
        steps_per_call: int = 1,
        compile: bool | dict = False,
        channels_last: bool = False,
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
        self.scheduler_interval, self.steps_per_call = scheduler_interval, steps_per_call
        self.automatic_optimization = steps_per_call == 1
        # GPU speed options: torch.compile of the net (True, or a dict of torch.compile arguments)
        # and channels_last memory format for conv nets. Both leave the state dict keys unchanged.
        self.compile_options = ({} if compile is True else dict(compile)) if compile else None
        self.channels_last = channels_last
        self.eval_sets, self.test_sets = list(eval_sets), list(test_sets)
        self._totals: dict[str, _Totals] = {}
        self._epoch_first_step = 0

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def configure_model(self) -> None:
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.compile_options is not None and getattr(self.net, "_compiled_call_impl", None) is None:
            self.net.compile(**self.compile_options)  # in place: compiled on the first batch

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        totals = self._totals.get(stage)
        if totals is None:
            zero = torch.zeros((), device=loss.device)
            totals = self._totals[stage] = _Totals(zero, torch.zeros((), dtype=torch.long, device=loss.device))
        totals.loss_sum += loss.detach() * len(y)
        totals.correct += (logits.detach().argmax(1) == y).sum()
        totals.count += len(y)
        return loss

    def _log_epoch(self, stages: list[str]) -> None:
        """Log the epoch's mean loss and accuracy of every stage that saw data (exact over DDP ranks:
        the sums are reduced, then divided)."""
        for stage in dict.fromkeys(stages):
            totals = self._totals.get(stage)
            if totals is None or totals.count == 0:
                continue
            sums = torch.stack([totals.loss_sum, totals.correct.to(totals.loss_sum.dtype),
                                torch.tensor(float(totals.count), device=totals.loss_sum.device)])
            if self.trainer.world_size > 1:
                sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
            loss, acc = sums[0] / sums[2], sums[1] / sums[2]
            # batch_size=1: one value per epoch (Lightning would otherwise inspect the batch).
            # The values are already exact and equal on every rank; sync_dist with a max over equal
            # values leaves them bit-identical and tells Lightning they are reduced (no warning).
            sync = dict(sync_dist=self.trainer.world_size > 1, reduce_fx="max")
            self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=stage == "train",
                     add_dataloader_idx=False, batch_size=1, **sync)
            self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True, add_dataloader_idx=False,
                     batch_size=1, **sync)

    def _reset(self, stages: list[str]) -> None:
        for stage in stages:
            self._totals.pop(stage, None)

    def on_validation_epoch_start(self) -> None:
        self._reset(self.eval_sets)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(self.eval_sets)

    def on_test_epoch_start(self) -> None:
        self._reset(self.test_sets)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self.test_sets)

    def on_fit_start(self) -> None:
        if self.automatic_optimization:
            return
        trainer = self.trainer
        needs_one = [f"{type(cb).__name__}.{hook}" for cb in trainer.callbacks for hook in PER_STEP_HOOKS
                     if getattr(type(cb), hook, None) is not getattr(L.Callback, hook)]
        if trainer.world_size > 1:
            needs_one.append(f"training on {trainer.world_size} devices")
        if str(trainer.precision) in ("16-mixed", "16"):  # fp16 needs the GradScaler of Lightning's loop
            needs_one.append(f"trainer.precision={trainer.precision} (loss scaling)")
        if needs_one:
            raise UserError(f"steps_per_call={self.steps_per_call} runs several optimizer steps per training_step; "
                            f"{', '.join(needs_one)} needs one step per call: set steps_per_call=1")

    def on_train_epoch_start(self) -> None:
        self._reset(["train"])
        self._epoch_first_step = self.global_step

    def training_step(self, batch, batch_idx: int) -> Tensor | None:
        if self.automatic_optimization:
            loss = self._step(batch, "train")
        else:
            self._run_steps(batch)
            loss = None
        if batch_idx + 1 >= self.trainer.num_training_batches:
            # Logged at the epoch's last step, so callbacks' on_train_epoch_end already see them.
            self._log_epoch(["train"])
        return loss

    def _run_steps(self, batches: BatchGroup) -> None:
        """One optimizer step per batch, as a hand-written loop does them."""
        lightning_optimizer = self.optimizers()
        optimizer = lightning_optimizer.optimizer
        scheduler = self.lr_schedulers() if self.scheduler_interval == "step" else None
        max_steps = self.trainer.max_steps
        if max_steps >= 0:
            batches = batches[: max(0, max_steps - self.global_step)]
        for batch in batches:
            optimizer.zero_grad()
            self._step(batch, "train").backward()
            lightning_optimizer._on_before_step()  # Lightning's step counter (trainer.global_step)
            optimizer.step()
            lightning_optimizer._on_after_step()
            if scheduler is not None:
                scheduler.step()

    def on_validation_start(self) -> None:
        # In-fit validation runs before checkpoints are saved: stop before a diverged model is.
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self._raise_if_diverged()

    def on_train_epoch_end(self) -> None:
        self._raise_if_diverged()
        if not self.automatic_optimization:
            # Lightning steps schedulers only under automatic optimization; same place otherwise.
            for config in self.trainer.lr_scheduler_configs:
                if config.interval == "epoch" and (self.current_epoch + 1) % config.frequency == 0:
                    config.scheduler.step()

    def _raise_if_diverged(self) -> None:
        totals = self._totals.get("train")
        # One host sync per epoch: a NaN/inf loss at any step leaves the epoch's sum non-finite.
        if totals is not None and not bool(torch.isfinite(totals.loss_sum)):
            raise UserError(
                f"training diverged: the loss became NaN/inf in epoch {self.current_epoch} (optimizer steps "
                f"{self._epoch_first_step}-{self.global_step - 1}); lower optimizer.lr (or clip gradients with "
                "trainer.gradient_clip_val=1.0 and steps_per_call=1). Everything written so far is in the run dir"
            )

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, self.eval_sets[dataloader_idx])

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, self.test_sets[dataloader_idx])

    def configure_optimizers(self):
        optimizer = build_optimizer(self.optimizer_factory, self.net)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}
