"""Per-layer gradient norms during training, and a figure of them against depth."""

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from dlfoundations.atomic import atomic_write_figure, atomic_write_json


class GradientFlow(L.Callback):
    """Averages the gradient norm of every Linear/Conv weight over each epoch (accumulated on the
    device: no host sync per step), logs ``grad_flow/first_last_ratio`` (first layer's norm over
    the last layer's: << 1 means vanishing gradients) and writes ``gradient_flow.png`` and
    ``gradient_flow.json`` (norms per layer, first and last epoch) into ``dirpath``."""

    def __init__(self, dirpath: str, filename: str = "gradient_flow.png") -> None:
        self.dirpath, self.filename = Path(dirpath), filename
        self.names: list[str] = []
        self.history: list[list[float]] = []  # per epoch, per layer
        self._sums: torch.Tensor | None = None
        self._steps = 0

    def _layers(self, pl_module: L.LightningModule) -> list[tuple[str, torch.Tensor]]:
        return [(n, m.weight) for n, m in pl_module.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        layers = self._layers(pl_module)
        norms = torch.stack([w.grad.detach().norm() if w.grad is not None else w.new_zeros(()) for _, w in layers])
        self.names = [n for n, _ in layers]
        self._sums = norms if self._sums is None else self._sums + norms
        self._steps += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._sums is None:
            return
        means = (self._sums / self._steps).float().cpu().tolist()
        self.history.append(means)
        self._sums, self._steps = None, 0
        ratio = means[0] / max(means[-1], 1e-30)
        # batch_size=1: one value per epoch (these are not averages over a batch).
        pl_module.log("grad_flow/first_last_ratio", ratio, batch_size=1)
        pl_module.log("grad_flow/first_layer", means[0], batch_size=1)
        pl_module.log("grad_flow/last_layer", means[-1], batch_size=1)

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.history:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, norms in (("first epoch", self.history[0]), ("last epoch", self.history[-1])):
            ax.plot(range(1, len(norms) + 1), norms, marker="o", markersize=3, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("layer (input -> output)")
        ax.set_ylabel("mean gradient norm of the weight")
        ratio = self.history[-1][0] / max(self.history[-1][-1], 1e-30)
        ax.set_title(f"{type(pl_module.net).__name__}: first/last layer ratio {ratio:.2e}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        atomic_write_figure(fig, self.dirpath / self.filename)
        atomic_write_json(
            self.dirpath / "gradient_flow.json",
            {"layers": self.names, "first_epoch": self.history[0], "last_epoch": self.history[-1]},
        )

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "names": self.names}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history, self.names = list(state_dict["history"]), list(state_dict["names"])
