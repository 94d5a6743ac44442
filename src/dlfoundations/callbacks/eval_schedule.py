"""Evaluate on a schedule of epochs (e.g. log-spaced) and record the metrics of every evaluation.

Lightning validates every ``check_val_every_n_epoch`` epochs. :class:`EvalSchedule` sets that
public Trainer attribute at the start of each epoch so that the validation loop (the datamodule's
``eval_sets``, e.g. ``train_eval``, ``train_clean``, ``test``) runs exactly at the scheduled
epochs, and nothing is evaluated in between. After each evaluated epoch it appends the logged
``*/acc`` and ``*/loss`` values to ``eval_history.json`` in the run dir (written atomically, so a
killed run keeps what it measured); at the end of fit it draws ``eval_curves.png`` (error vs epoch).
A run of several replicas (``replicas=R``) gets both files per replica, in ``replica_<k>/``.
"""

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from dlfoundations.atomic import atomic_write_figure, atomic_write_text
from dlfoundations.errors import UserError
from dlfoundations.replicas.training import replica_prefix, runs_in, split_by_replica
from dlfoundations.ticks import log_ticks
from dlfoundations.words import words

SPACINGS = ("log", "linear", "all")


def schedule_epochs(max_epochs: int, num: int = 25, spacing: str = "log", epochs: list[int] | None = None) -> list[int]:
    """The 1-based epochs to evaluate, sorted, always including the last one. ``log``: ``num``
    distinct epochs from 1 to ``max_epochs`` as evenly spaced in log as rounding allows (all
    epochs when ``num >= max_epochs``); ``linear``: evenly spaced; ``all``: every epoch;
    ``epochs``: exactly these (those <= max_epochs), plus the last."""
    if max_epochs < 1:
        raise UserError(f"an evaluation schedule needs trainer.max_epochs >= 1, got {max_epochs}")
    if spacing not in SPACINGS:
        raise UserError(f"eval schedule spacing={spacing!r} is not known; use one of {SPACINGS}")
    if epochs:
        return sorted({int(e) for e in epochs if 1 <= int(e) <= max_epochs} | {max_epochs})
    if num < 2:
        raise UserError(f"eval schedule num={num} must be >= 2 (the first and the last epoch)")
    if spacing == "all" or num >= max_epochs:
        return list(range(1, max_epochs + 1))
    if spacing == "linear":
        return sorted({round(1 + i * (max_epochs - 1) / (num - 1)) for i in range(num)})
    # Rounding a geometric grid merges its first points: ask for more points until num are distinct.
    k = num
    while True:
        grid = sorted({round(math.exp(i * math.log(max_epochs) / (k - 1))) for i in range(k)})
        if len(grid) >= num:
            return grid
        k += 1


class EvalSchedule(L.Callback):
    """Run the validation loop only at :func:`schedule_epochs` and keep every evaluation."""

    supports_replicas = True  # works on stacked replicas (dlfoundations.config.replicable)

    def __init__(
        self,
        dirpath: str,
        num: int = 25,
        spacing: str = "log",
        epochs: list[int] | None = None,
        filename: str = "eval_history.json",
        plot: str | None = "eval_curves.png",
    ) -> None:
        self.dirpath, self.num, self.spacing, self.epochs = dirpath, num, spacing, list(epochs) if epochs else None
        self.filename, self.plot_name = filename, plot
        schedule_epochs(max(num, 2), num, spacing, self.epochs)  # bad options fail before any work
        self.schedule: set[int] = set()
        self.history: list[dict[str, float]] = []
        self._validated = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            if not trainer.limit_val_batches:
                raise UserError(
                    "callbacks.eval_schedule has nothing to evaluate: set data.eval_sets (e.g. "
                    "[train_eval,test]) or turn it off with callbacks.eval_schedule=null"
                )
            assert trainer.max_epochs is not None  # the Trainer sets it: 1000, or -1 when only max_steps is given
            self.schedule = set(schedule_epochs(trainer.max_epochs, self.num, self.spacing, self.epochs))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        # Lightning validates when epoch % check_val_every_n_epoch == 0: epoch itself says yes,
        # epoch + 1 says no.
        trainer.check_val_every_n_epoch = epoch if epoch in self.schedule else epoch + 1

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._validated != trainer.current_epoch:
            return
        values = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.endswith(("/acc", "/loss", "/err")) and getattr(v, "numel", lambda: 1)() == 1
        }
        self.history.append({"epoch": trainer.current_epoch + 1, "step": trainer.global_step, **values})
        self._write()

    def per_run(self) -> dict[Path, list[dict[str, float]]]:
        """The history of each run in this run dir: the run itself, or each replica's folder."""
        runs: dict[int | None, list[dict[str, float]]] = {}
        for entry in self.history:
            base = {"epoch": entry["epoch"], "step": entry["step"]}
            parts = split_by_replica({k: v for k, v in entry.items() if k not in base})
            for k in runs_in(parts):
                runs.setdefault(k, []).append({**base, **parts.get(k, {})})
        return {Path(self.dirpath) / (replica_prefix(k) if k is not None else ""): h for k, h in runs.items()}

    @rank_zero_only
    def _write(self) -> None:
        for folder, history in self.per_run().items():
            payload = {"schedule": sorted(self.schedule), "history": history}
            atomic_write_text(folder / self.filename, json.dumps(payload, indent=1) + "\n")

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.plot_name and len(self.history) > 1:
            for folder, history in self.per_run().items():
                plot_history(history, folder / self.plot_name)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])


def plot_history(history: list[dict[str, float]], path: Path) -> Path:
    """Error (1 - accuracy) of every recorded set against the evaluated epoch, log epoch axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(k for h in history for k in h if k.endswith("/acc")))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, name in enumerate(names):
        points = [(h["epoch"], 1.0 - h[name]) for h in history if name in h]
        ax.plot(*zip(*points), marker="o", markersize=3, color=f"C{i}", label=words(name[:-4] + "/err"))
    ax.set_xscale("log")
    log_ticks(ax.xaxis)
    ax.set_xlabel("epoch (evaluated epochs)")
    ax.set_ylabel("error")
    ax.set_title("errors at the scheduled evaluations", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_figure(fig, path)
    return path
