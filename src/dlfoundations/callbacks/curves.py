"""Per-epoch metric history and the end-of-fit figure (PNG) in the run directory."""

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from dlfoundations.atomic import atomic_write_figure
from dlfoundations.replicas.training import replica_prefix, runs_in, split_by_replica
from dlfoundations.words import words


class TrainingCurves(L.Callback):
    """Records ``metrics`` after every epoch and plots them against the epoch at the end of fit.

    Accuracies go on the left axis, losses (names ending in ``loss``) on a right axis. The history
    is part of the checkpoint, so a resumed run plots its whole history. A run of several replicas
    (``replicas=R``) gets one figure per replica, in ``replica_<k>/``.
    """

    supports_replicas = True  # works on stacked replicas (dlfoundations.config.replicable)

    def __init__(
        self, metrics: list[str], dirpath: str, filename: str = "curves.png", title: str | None = None
    ) -> None:
        self.metrics, self.dirpath, self.filename, self.title = list(metrics), dirpath, filename, title
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning runs validation before this hook, so train and eval metrics are both here.
        wanted = set(self.metrics)
        values = {
            name: float(value)
            for k, metrics in split_by_replica(trainer.callback_metrics).items()
            for stripped, value in metrics.items()
            if stripped in wanted
            for name in [f"{replica_prefix(k)}{stripped}" if k is not None else stripped]
        }
        self.history.append({"epoch": trainer.current_epoch + 1, **values})

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        runs: dict[int | None, list[dict[str, float]]] = {}
        for entry in self.history:
            parts = split_by_replica(entry)
            for k in runs_in(parts):
                runs.setdefault(k, []).append({"epoch": entry["epoch"], **parts.get(k, {})})
        for k, history in runs.items():
            if any(len(h) > 1 for h in history):
                folder = Path(self.dirpath) / (replica_prefix(k) if k is not None else "")
                self.plot(folder / self.filename, history)

    def plot(self, path: Path, history: list[dict[str, float]] | None = None) -> Path:
        history = self.history if history is None else history
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax_loss = None
        epochs = [h["epoch"] for h in history]
        for i, name in enumerate(self.metrics):
            points = [(e, h[name]) for e, h in zip(epochs, history) if name in h]
            if not points:
                continue
            is_loss = name.endswith("loss")
            target = ax
            if is_loss:
                if ax_loss is None:
                    ax_loss = ax.twinx()
                    ax_loss.set_ylabel("loss")
                target = ax_loss
            target.plot(*zip(*points), label=words(name), color=f"C{i}", linestyle="--" if is_loss else "-")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        handles = [h for a in (ax, ax_loss) if a is not None for h in a.get_legend_handles_labels()[0]]
        ax.legend(handles, [str(h.get_label()) for h in handles], loc="center right")  # the names set above
        ax.set_title(self.title or "training curves")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_write_figure(fig, path)
        return path

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])
