"""Framework overhead: the project's training path (Trainer + task + datamodule, as
experiment=double_descent configures it, with the default rich progress bar and CSV logging) vs a
hand-written PyTorch loop doing the same work: same MLP 40-100-100-10 and initialisation, same
MNIST-1D data with 15% noisy labels, same batch order, same SGD, loss and accuracy per step.
Ratio = project / hand-written (1.0 = no tax). Both times include the data setup and the epochs.
"""

import tempfile
import time

import lightning as L
import torch
import torch.nn.functional as F

from dlfoundations.config import compose_config
from dlfoundations.data import MNIST1DDataModule, TensorBatchLoader
from dlfoundations.models import MLP
from dlfoundations.train import main


def _hand_written(epochs: int, cache_dir: str) -> float:
    start = time.perf_counter()
    L.seed_everything(0, verbose=False)
    dm = MNIST1DDataModule(train_size=4000, test_size=12000, label_noise=0.15, seed=0, cache_dir=cache_dir,
                           on_device=False)
    dm.setup()
    net = MLP(40, width=100, depth=2)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loader = TensorBatchLoader((dm.splits.x_train, dm.splits.y_train), batch_size=100, shuffle=True, seed=0)
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for x, y in loader:
            opt.zero_grad()
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
        float(loss_sum), int(correct)  # one host sync per epoch, as the project's epoch logging
    return time.perf_counter() - start


def _project(epochs: int, cache_dir: str, out: str) -> float:
    cfg = compose_config(["experiment=double_descent", "model.width=100", f"trainer.max_epochs={epochs}",
                          "test=false", "optimized_metric=train/acc", "print_config=false", "callbacks=default", "callbacks.model_checkpoint=null",
                          "callbacks.training_curves=null", "callbacks.rng_state=null",
                          "trainer.enable_progress_bar=true", "trainer.enable_model_summary=false"],
                         out, data_dir=cache_dir)
    start = time.perf_counter()
    main(cfg)
    return time.perf_counter() - start


def run(quick: bool = False) -> list[tuple]:
    epochs = 3 if quick else 20
    with tempfile.TemporaryDirectory() as tmp:
        _hand_written(1, tmp)  # warm-up; also generates the MNIST-1D cache both paths then load
        hand = min(_hand_written(epochs, tmp) for _ in range(1 if quick else 3))
        project = min(_project(epochs, tmp, f"{tmp}/run{i}") for i in range(1 if quick else 3))
    ratio = project / hand
    return [(f"overhead: MNIST-1D MLP, {epochs} epochs, Trainer / hand loop", hand, project, ratio, "<= 1.05",
             ratio <= 1.05)]
