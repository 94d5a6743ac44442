"""Resume a job that SLURM requeued (time limit via submitit, pre-emption, ``scontrol requeue``)."""

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


def slurm_restarts() -> int:
    """How often SLURM has restarted this job (``SLURM_RESTART_COUNT``; 0 outside SLURM)."""
    restarts = os.environ.get("SLURM_RESTART_COUNT", "")
    return int(restarts) if restarts.isdigit() else 0


def requeued_checkpoint(callbacks: Iterable[Any]) -> str | None:
    """The run's own ``last.ckpt`` when SLURM restarted this job (``SLURM_RESTART_COUNT`` > 0), so
    that it continues where it stopped; None for a first start or where there is no checkpoint yet."""
    restarts = slurm_restarts()
    if restarts < 1:
        return None
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath and callback.save_last:
            last = Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
            if last.exists():
                log.info("SLURM restarted this job (%s time(s)): resuming from %s", restarts, last)
                return str(last)
    log.info("SLURM restarted this job (%s time(s)) before its first checkpoint: starting over", restarts)
    return None
