"""The training engine (dlfoundations.tasks.engine) is the task's, not classification's: a
least-squares task written on it in a few lines takes exactly the steps of a hand-written loop."""

import functools

import lightning as L
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from dlfoundations.errors import UserError
from dlfoundations.tasks.engine import GradientTask


class LeastSquares(GradientTask):
    """Mean squared error on a linear net: what a task built on the engine has to say."""

    def __init__(self, net: nn.Module, **engine) -> None:
        super().__init__(net, **engine)
        self.losses: list[Tensor] = []
        self.logged: list[float] = []

    def train_loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        x, y = batch
        loss = (self.net(x).squeeze(-1) - y).square().mean()
        self.losses.append(loss.detach())
        return loss

    def log_train_epoch(self) -> None:
        self.logged.append(float(torch.stack(self.losses).mean()))

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.losses = []  # kept until here: the engine asks train_loss_nonfinite after the epoch's log

    def train_loss_nonfinite(self) -> Tensor | None:
        return None if not self.losses else ~torch.isfinite(torch.stack(self.losses)).all()


def _data(n: int = 40) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return x, x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.1 * torch.randn(
        n, generator=gen, dtype=torch.float64
    )


def _fit(steps_per_call: int, lr: float = 0.05, epochs: int = 3, clip: float | None = None) -> tuple[nn.Module, list]:
    torch.manual_seed(0)
    net = nn.Linear(3, 1).double()
    task = LeastSquares(
        net,
        optimizer=functools.partial(torch.optim.SGD, lr=lr, momentum=0.9),
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=4, gamma=0.5),
        scheduler_interval="step",
        steps_per_call=steps_per_call,
        gradient_clip_val=clip,
    )
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(task, train_dataloaders=DataLoader(TensorDataset(*_data()), batch_size=8, shuffle=False))
    return net, task.logged


def _by_hand(lr: float = 0.05, epochs: int = 3, clip: float | None = None) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Linear(3, 1).double()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    x, y = _data()
    for _ in range(epochs):
        for i in range(0, len(x), 8):
            loss = (net(x[i : i + 8]).squeeze(-1) - y[i : i + 8]).square().mean()
            opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            sched.step()
    return net


@pytest.mark.parametrize("clip", [None, 0.5])
def test_a_task_on_the_engine_takes_the_hand_written_steps(clip):
    expected = _by_hand(clip=clip)
    for k in (1, 5):  # 5 batches per epoch: one call per epoch with K = 5
        net, logged = _fit(k, clip=clip)
        assert len(logged) == 3  # the task's epoch hook: once per epoch, whatever K
        for got, want in zip(net.parameters(), expected.parameters(), strict=True):
            # Max abs difference of every parameter after 15 steps (float64): within 1e-12.
            assert (got - want).abs().max().item() <= 1e-12


def test_the_engine_stops_a_diverging_task_in_one_line():
    with pytest.raises(UserError, match=r"training diverged: the loss became NaN/inf in epoch 0 "):
        _fit(1, lr=1e60, epochs=2)
