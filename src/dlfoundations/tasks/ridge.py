"""Closed-form ridge regression on a model's fixed features, as a Lightning task.

The "training step" is the exact minimiser of 1/2 ||Phi theta - Y||^2 + lambda/2 ||theta||^2 for
every lambda of the grid at once (manual optimization: no optimizer, one step). The validation
loop picks the lambda with the smallest validation error ("tuned"); the test loop reports both
the fixed-lambda and the tuned solutions. Errors are L2 norms of residuals (not squared, not
averaged), accumulated over batches as sums of squares.
"""

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from dlfoundations.data.base import eval_groups
from dlfoundations.tasks.base import Task

if TYPE_CHECKING:
    from dlfoundations.models.random_features import RandomFeatures


def ridge_solve(phi: Tensor, y: Tensor, lam: float) -> Tensor:
    """argmin 1/2 ||phi theta - y||^2 + lam/2 ||theta||^2, through the smaller of the primal
    (p x p) and the dual (n x n) systems; both give the same theta."""
    n, p = phi.shape
    if p <= n:
        return torch.linalg.solve(phi.T @ phi + lam * torch.eye(p, dtype=phi.dtype, device=phi.device), phi.T @ y)
    return phi.T @ torch.linalg.solve(phi @ phi.T + lam * torch.eye(n, dtype=phi.dtype, device=phi.device), y)


class RidgeRegression(Task):
    """Fits ``net.theta`` of a features model (``net.features(x)``) by exact ridge regression.
    Single-process: the whole training set is one batch."""

    def __init__(
        self,
        net: "RandomFeatures",
        fixed_lambda: float = 0.01,
        lambdas: list[float] | None = None,
        eval_sets: list[str] | tuple[str, ...] = ("val",),
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["net"], logger=False)
        self.net, self.fixed_lambda = net, fixed_lambda
        grid = sorted(set(lambdas or [fixed_lambda]))
        # Solve for the tuning grid and the fixed lambda; tune over the grid only.
        self.lambdas = grid + ([fixed_lambda] if fixed_lambda not in grid else [])
        self.grid_size = len(grid)
        self.fixed_index = self.lambdas.index(fixed_lambda)
        self.eval_sets = list(eval_sets)
        self.register_buffer("thetas", torch.zeros(len(self.lambdas), net.theta.weight.shape[1], dtype=torch.float64))
        self.register_buffer("tuned_index", torch.tensor(self.fixed_index))  # until validation tunes it
        self.sq_err: dict[str, Tensor] = {}  # stage -> sum of squared residuals, one per lambda

    # Buffers registered in __init__.
    thetas: Tensor
    tuned_index: Tensor

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def configure_optimizers(self):
        return None  # closed form: nothing to optimise by gradient

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        if batch_idx > 0:
            raise ValueError(
                "ridge regression needs the whole training set in one batch: set data.batch_size >= data.train_size"
            )
        x, y = batch
        phi, y = self.net.features(x).to(torch.float64), y.to(torch.float64)
        self.thetas = torch.stack([ridge_solve(phi, y, lam) for lam in self.lambdas])
        self._set_theta()
        self._accumulate("train", x, y)

    def _set_theta(self) -> None:
        with torch.no_grad():
            self.net.theta.weight.copy_(self.thetas[self.tuned_index].to(self.net.theta.weight.dtype)[None])

    def _accumulate(self, stage: str, x: Tensor, y: Tensor) -> None:
        pred = self.net.features(x).to(torch.float64) @ self.thetas.T  # (n, num_lambdas)
        sq = (pred - y.to(torch.float64)[:, None]).square().sum(0)
        self.sq_err[stage] = self.sq_err.get(stage, 0) + sq

    def _log_errors(self, stage: str) -> None:
        sq = self.sq_err.pop(stage)
        self.log(f"{stage}/err_tuned", sq[self.tuned_index].sqrt().float(), prog_bar=stage == "test")
        self.log(f"{stage}/err_fixed", sq[self.fixed_index].sqrt().float(), prog_bar=stage == "test")

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0) -> None:
        x, *labels = batch  # one loader per eval_groups group: (x, y) or (x, y_noisy, y_clean)
        for stage, y in zip(eval_groups(self.eval_sets)[dataloader_idx], labels, strict=True):
            self._accumulate(stage, x, y)

    def on_validation_epoch_end(self) -> None:
        if "val" in self.sq_err:
            # Tune lambda on the validation error; the fixed-lambda solution stays as it is.
            self.tuned_index = torch.argmin(self.sq_err["val"][: self.grid_size]).to(self.tuned_index.device)
            self._set_theta()
            self.log("tuned_lambda", float(self.lambdas[int(self.tuned_index)]))
        for stage in self.eval_sets:
            if stage in self.sq_err:
                self._log_errors(stage)

    def on_train_epoch_end(self) -> None:
        self._log_errors("train")  # after validation, so with the tuned lambda

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._accumulate("test", *batch)

    def on_test_epoch_end(self) -> None:
        self._log_errors("test")
