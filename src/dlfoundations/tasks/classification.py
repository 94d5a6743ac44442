"""Classification with cross-entropy for any ``nn.Module`` that maps inputs to logits."""

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from dlfoundations.errors import UserError
from dlfoundations.tasks.optim import build_optimizer

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class ClassificationModule(L.LightningModule):
    """Trains ``net`` with cross-entropy and logs loss and accuracy.

    Metric names: ``train/loss``, ``train/acc`` (running averages over the epoch, in train mode),
    one ``<name>/loss``, ``<name>/acc`` pair per evaluation set of the validation loop (the
    datamodule's ``eval_sets``: ``val``, ``train_eval``, ``train_clean``) and of the test loop
    (``test_sets``, by default only ``test``).
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
    ) -> None:
        super().__init__()
        # The full resolved config goes to the loggers and config.yaml; the checkpoint keeps only
        # plain values so that it loads with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"task.scheduler_interval must be epoch or step, got {scheduler_interval!r}")
        self.scheduler_interval = scheduler_interval
        self.eval_sets, self.test_sets = list(eval_sets), list(test_sets)
        stages = list(dict.fromkeys(["train", *self.eval_sets, *self.test_sets]))
        # ModuleDict keys must not shadow nn.Module attributes ("train"), hence the suffix.
        self.acc = nn.ModuleDict({f"{s}_": MulticlassAccuracy(num_classes, average="micro", validate_args=False) for s in stages})
        self.mean_loss = nn.ModuleDict({f"{s}_": MeanMetric() for s in stages})

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        # Metric objects accumulate on the device and are logged once per epoch (_log_epoch):
        # self.log per step costs more than the step itself for small models.
        self.mean_loss[f"{stage}_"].update(loss.detach(), weight=len(y))
        self.acc[f"{stage}_"].update(logits.detach(), y)
        return loss

    def _log_epoch(self, stages: list[str]) -> None:
        """Log (compute, sync, reset) the epoch's metrics of every stage that saw data."""
        for stage in dict.fromkeys(stages):
            mean_loss, acc = self.mean_loss[f"{stage}_"], self.acc[f"{stage}_"]
            if not acc.update_called:
                continue
            self.log(f"{stage}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=stage == "train",
                     add_dataloader_idx=False, metric_attribute=f"mean_loss.{stage}_")
            self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True, add_dataloader_idx=False,
                     metric_attribute=f"acc.{stage}_")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(self.eval_sets)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self.test_sets)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        # Remember the first non-finite loss on the device (no host sync per step); checked per epoch.
        bad = ~torch.isfinite(loss.detach()) & (self._first_bad_step < 0)
        self._first_bad_step = torch.where(bad, self.global_step, self._first_bad_step)
        if batch_idx + 1 >= self.trainer.num_training_batches:
            # Logged at the epoch's last step, so callbacks' on_train_epoch_end already see them.
            self._log_epoch(["train"])
        return loss

    def on_train_epoch_start(self) -> None:
        self._first_bad_step = torch.tensor(-1, device=self.device)

    def on_validation_start(self) -> None:
        # In-fit validation runs before checkpoints are saved: stop before a diverged model is.
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self._raise_if_diverged()

    def on_train_epoch_end(self) -> None:
        self._raise_if_diverged()

    def _raise_if_diverged(self) -> None:
        step = int(getattr(self, "_first_bad_step", -1))
        if step >= 0:
            raise UserError(
                f"training diverged: the loss became NaN/inf at epoch {self.current_epoch}, step {step}; "
                "lower optimizer.lr (or clip gradients with trainer.gradient_clip_val=1.0). "
                "Everything written so far is in the run dir"
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
