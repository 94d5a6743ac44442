"""What every task (LightningModule) of the project shares: the fit's counts in the callback
metrics, and attribute assignment without nn.Module's checks where they cannot apply."""

from typing import Any

import lightning as L
import torch

FIT_COUNTS = "fit_progress/"  # prefix of the counts in trainer.callback_metrics; not a metric


class Task(L.LightningModule):
    """Base class of the project's tasks."""

    # True where the task trains stacked replicas (replicas=R) and splits their metrics by replica.
    supports_replicas = False

    def failed_replicas(self) -> dict[int, str]:
        """Replicas that failed while the others trained on (index -> the error), none by default."""
        return {}

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning re-assigns a bookkeeping attribute of the module before and after every hook it
        # dispatches (12 times per optimizer step under manual optimization), and nn.Module's
        # __setattr__ checks each value against Parameter, Module and Buffer first (two of them
        # Python-level isinstance checks): about 2 us each on a 2-core CPU, several percent of an
        # optimizer step of the small models here. A plain value re-assigned to a name that already
        # lives in the instance __dict__ is, by nn.Module's own rules, a plain attribute (parameters,
        # buffers and submodules live in their own dicts and are removed from __dict__ when
        # registered), so nn.Module would end in object.__setattr__ too.
        if name in self.__dict__ and (value is None or type(value) in _PLAIN):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def on_train_end(self) -> None:
        # The fit's epoch and step counts, read back by fit_counts: under strategy=ddp_spawn the fit
        # runs in worker processes and the launching process's trainer keeps its counters at 0,
        # but Lightning sends the callback metrics back to it.
        trainer = self.trainer
        trainer.callback_metrics[FIT_COUNTS + "epochs"] = torch.tensor(trainer.current_epoch)
        trainer.callback_metrics[FIT_COUNTS + "global_step"] = torch.tensor(trainer.global_step)


_PLAIN = (str, int, float, bool)


def fit_counts(trainer: L.Trainer) -> tuple[int, int]:
    """(epochs, global_step) of the trainer's last fit, wherever it ran."""
    metrics = trainer.callback_metrics
    return (
        int(metrics.get(FIT_COUNTS + "epochs", trainer.current_epoch)),
        int(metrics.get(FIT_COUNTS + "global_step", trainer.global_step)),
    )
