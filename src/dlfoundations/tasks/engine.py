"""The training engine every gradient-trained task runs on: optimizer steps, schedules, clipping,
divergence. A task built on it says only what a step's loss is and what it records per epoch.

The engine uses Lightning's manual optimization: each ``training_step`` call pulls up to
``steps_per_call`` batches from the data iterator and takes one optimizer step per batch
(``manual_backward``, the Lightning optimizer's ``step``, ``clip_gradients``), so per-step callback
hooks, precision plugins (fp16 loss scaling), gradient clipping and DDP gradient synchronisation run
at every step, and K > 1 trains exactly what K = 1 trains while paying Lightning's per-call cost once
per K steps. Learning-rate schedulers are stepped here (per optimizer step or per epoch,
``scheduler_interval``); ``ReduceLROnPlateau`` steps per epoch on ``scheduler_monitor``.

With ``replicas`` = R > 1 the net is a :class:`~dlfoundations.replicas.StackedNet` and the loss a
task returns is the sum of the replicas' mean losses, so an elementwise optimizer takes exactly each
separate run's step; gradient clipping by norm is per replica. A replica whose loss becomes NaN/inf
fails alone (:attr:`GradientTask.diverged`): from the end of that epoch its parameters are held at
zero, and the others train on, each still exactly its separate run; only when every replica has
diverged does the fit stop, as a single run's does.
"""

import logging
from collections.abc import Callable, Iterator
from typing import Any, cast

import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn

from dlfoundations.errors import UserError
from dlfoundations.replicas.training import clip_norm_per_replica
from dlfoundations.tasks.base import Task
from dlfoundations.tasks.optim import build_optimizer

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]
log = logging.getLogger(__name__)
DIVERGED = "diverged_replicas"  # checkpoint key: the replicas that diverged (index -> error)


class GradientTask(Task):
    """A task trained by gradient steps on ``net`` (see the module's docstring).

    Subclasses implement :meth:`train_loss` (forward one training batch, record what the epoch
    logs, return the loss to back-propagate), :meth:`log_train_epoch` (log the epoch's training
    metrics) and :meth:`train_loss_nonfinite` (whether a step's loss this epoch was NaN/inf, per
    replica).
    """

    supports_replicas = True  # works on stacked replicas (dlfoundations.config.replicable)

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
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
        self._compiled = False
        self._epoch_first_step = 0
        self._epoch_batches = 0
        # Replica -> why it failed (the error its separate run stops with); kept in checkpoints.
        self.diverged: dict[int, str] = {}
        self._frozen: Tensor | None = None  # their indices, once any

    # What a task built on the engine says.
    def train_loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        """Forward one training batch, record the epoch's metrics, return the loss to back-propagate."""
        raise NotImplementedError

    def log_train_epoch(self) -> None:
        """Log the epoch's training metrics (called at the epoch's last training call)."""
        raise NotImplementedError

    def train_loss_nonfinite(self) -> Tensor | None:
        """Bool ``[]`` (or ``[R]``): whether a step's loss this epoch was NaN/inf; None before any step.
        Asked after :meth:`log_train_epoch`, at the epoch's end: keep the epoch's losses until the
        next epoch starts."""
        raise NotImplementedError

    # The engine.
    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def configure_model(self) -> None:
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.compile_options is not None and not self._compiled:
            self.net.compile(**self.compile_options)  # in place: compiled on the first batch
            self._compiled = True

    def on_train_epoch_start(self) -> None:
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
            loss = self.train_loss(batch)
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
            self.log_train_epoch()

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
        # One host sync per epoch: a NaN/inf loss at any step of the epoch.
        bad = self.train_loss_nonfinite()
        if bad is None or not bool(bad.any()):
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

    def configure_optimizers(self):
        optimizer = build_optimizer(self.optimizer_factory, self.net)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}
