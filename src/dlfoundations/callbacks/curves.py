"""Per-epoch metric history and the end-of-fit figure (PNG) in the run directory."""

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from dlfoundations.atomic import atomic_write


class TrainingCurves(L.Callback):
    """Records ``metrics`` after every epoch and plots them against the epoch at the end of fit.

    Accuracies go on the left axis, losses (names ending in ``loss``) on a right axis. The history
    is part of the checkpoint, so a resumed run plots its whole history.
    """

    def __init__(
        self, metrics: list[str], dirpath: str, filename: str = "curves.png", title: str | None = None
    ) -> None:
        self.metrics, self.dirpath, self.filename, self.title = list(metrics), dirpath, filename, title
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning runs validation before this hook, so train and eval metrics are both here.
        values = {m: float(trainer.callback_metrics[m]) for m in self.metrics if m in trainer.callback_metrics}
        self.history.append({"epoch": trainer.current_epoch + 1, **values})

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.history:
            self.plot(Path(self.dirpath) / self.filename)

    def plot(self, path: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax_loss = None
        epochs = [h["epoch"] for h in self.history]
        for i, name in enumerate(self.metrics):
            points = [(e, h[name]) for e, h in zip(epochs, self.history) if name in h]
            if not points:
                continue
            is_loss = name.endswith("loss")
            target = ax
            if is_loss:
                if ax_loss is None:
                    ax_loss = ax.twinx()
                    ax_loss.set_ylabel("loss")
                target = ax_loss
            target.plot(*zip(*points), label=name, color=f"C{i}", linestyle="--" if is_loss else "-")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        handles = [h for a in (ax, ax_loss) if a is not None for h in a.get_legend_handles_labels()[0]]
        ax.legend(handles, [str(h.get_label()) for h in handles], loc="center right")  # the names set above
        ax.set_title(self.title or "training curves")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
        plt.close(fig)
        return path

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])
