"""A progress bar in the units a researcher reads: optimizer steps of the whole run, steps/s,
the epoch, and the latest epoch metrics.

Lightning's bars count ``training_step`` calls per epoch; with several optimizer steps per call
(``steps_per_call``) and epochs of a fraction of a second, that shows ``1/1 0.00it/s``. This bar
advances by ``trainer.global_step`` (optimizer steps), over the whole fit, with tqdm's rate and ETA.
"""

import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm


class StepProgressBar(ProgressBar):
    """One bar for the whole fit: ``epoch 12/500 | 480/20000 steps [00:03<02:10, 150 steps/s, ...]``.

    Evaluation loops print nothing (they are short); the test loop's table is Lightning's.
    ``refresh_seconds`` bounds how often the terminal is redrawn.
    """

    supports_replicas = True  # works on stacked replicas (dlfoundations.config.replicable)

    def __init__(self, refresh_seconds: float = 0.5, leave: bool = True) -> None:
        super().__init__()
        self.refresh_seconds, self.leave = refresh_seconds, leave
        self._enabled = True
        self._bar: Any = None
        self._shown_step = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def _total_steps(self, trainer: "L.Trainer") -> int | None:
        per_epoch = trainer.num_training_batches
        totals = []
        if trainer.max_steps is not None and trainer.max_steps >= 0:
            totals.append(trainer.max_steps)
        if trainer.max_epochs is not None and trainer.max_epochs >= 0 and per_epoch != float("inf"):
            totals.append(int(trainer.max_epochs * per_epoch))
        return min(totals) if totals else None

    def on_train_start(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        if not self._enabled:
            return
        self._shown_step = trainer.global_step
        self._bar = tqdm(
            total=self._total_steps(trainer),
            initial=trainer.global_step,
            unit=" steps",
            dynamic_ncols=True,
            leave=self.leave,
            file=sys.stderr,
            mininterval=self.refresh_seconds,
            smoothing=0.1,
        )

    def on_train_epoch_start(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        if self._bar is not None:
            epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs >= 0 else "?"
            self._bar.set_description(f"epoch {trainer.current_epoch + 1}/{epochs}", refresh=False)

    def on_train_batch_end(
        self, trainer: "L.Trainer", pl_module: "L.LightningModule", outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._bar is not None:
            self._bar.update(trainer.global_step - self._shown_step)
            self._shown_step = trainer.global_step

    def on_train_epoch_end(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        if self._bar is not None:
            metrics = self.get_metrics(trainer, pl_module)
            metrics.pop("v_num", None)
            self._bar.set_postfix(metrics, refresh=False)

    def on_train_end(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_exception(self, trainer: "L.Trainer", pl_module: "L.LightningModule", exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)
