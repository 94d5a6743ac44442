"""Framework overhead: the project's training path vs a hand-written PyTorch loop doing the same work.

The project runs ``dlfoundations.run.train.main`` on the experiment's config (Trainer + task +
datamodule, its ``steps_per_call``, the default rich progress bar, CSV logging, the model summary;
checkpoints, plots and the final test are off because the hand loop does not do them). The hand
loop builds the same datamodule and model from the same config under the same seed (so the same
data, labels and initial weights), walks the same batch order with the same SGD, accumulates loss
and accuracy per step, and evaluates the same sets in eval mode every epoch where the experiment
does. Both times include data setup and all epochs; repeats alternate, medians count. Ratio =
project / hand-written (1.0 = no tax). The final training loss of both must agree, or the row is
not comparing the same work and the benchmark stops.

    python -m benchmarks.overhead [--quick]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from dlfoundations.config.compose import compose_config
from dlfoundations.data import TensorBatchLoader
from dlfoundations.run.train import main
from dlfoundations.seeding import seed_run

# name -> (overrides, epochs, quick epochs)
WORKLOADS = {
    "MNIST-1D MLP 40-100-100-10 (experiment=double_descent)": (
        ["experiment=double_descent", "model.width=100", "data.eval_sets=[]", "callbacks.eval_schedule=null"],
        500,
        20,
    ),
    "small CNN on MNIST-sized data (experiment=memorize, model=smallnet width 8, 0.8M params)": (
        [
            "experiment=memorize",
            "data=mnist_bundled",
            "data.subset_size=null",
            "data.train_size=4000",
            "data.val_size=500",
            "data.test_size=500",
            "model=smallnet",
            "model.width=8",
            "model.hidden=128",
        ],
        5,
        1,
    ),
}
MEASURE = [
    "test=false",
    "print_config=false",
    "callbacks=default",
    "callbacks.model_checkpoint=null",
    "callbacks.training_curves=null",
    "callbacks.rng_state=null",
    "++trainer.enable_progress_bar=true",
    "++trainer.enable_model_summary=true",
    "logger=csv",
    "optimized_metric=train/loss",
]


def _hand_written(cfg: DictConfig, epochs: int) -> tuple[float, float]:
    """The loop a researcher writes by hand; returns (seconds, last epoch's mean training loss)."""
    start = time.perf_counter()
    seed_run(cfg.seed)
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()
    net = hydra.utils.instantiate(cfg.model)
    o = cfg.optimizer
    opt = torch.optim.SGD(net.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    s = dm.splits
    loader = TensorBatchLoader((s.x_train, s.y_train), batch_size=cfg.data.batch_size, shuffle=True, seed=cfg.seed)
    eval_sets = {"train_eval": (s.x_train, s.y_train), "val": (s.x_val, s.y_val)}
    eval_loaders = [
        TensorBatchLoader(eval_sets[name], batch_size=cfg.data.eval_batch_size) for name in cfg.data.eval_sets
    ]
    for epoch in range(epochs):
        net.train()
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
        train_loss = float(loss_sum) / len(s.y_train)  # one host sync per epoch, as the project's logging
        int(correct)
        net.eval()
        with torch.inference_mode():
            for eval_loader in eval_loaders:
                eval_loss, eval_correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
                for x, y in eval_loader:
                    logits = net(x)
                    eval_loss += F.cross_entropy(logits, y) * len(y)
                    eval_correct += (logits.argmax(1) == y).sum()
                float(eval_loss), int(eval_correct)
    return time.perf_counter() - start, train_loss


def _project(cfg: DictConfig) -> tuple[float, float]:
    start = time.perf_counter()
    results = main(cfg)
    return time.perf_counter() - start, results["metrics"]["train/loss"]


def measure(overrides: list[str], epochs: int, repeats: int, data_dir: str, out: str) -> tuple[float, float]:
    """Median seconds of the hand-written loop and of the project's path, alternating repeats."""
    hand, project = [], []
    for i in range(repeats):
        cfg = compose_config([*overrides, *MEASURE, f"trainer.max_epochs={epochs}"], f"{out}/run{i}", data_dir)
        t_hand, loss_hand = _hand_written(cfg, epochs)
        t_project, loss_project = _project(cfg)
        if abs(loss_hand - loss_project) > 1e-4 * max(1.0, abs(loss_hand)):
            raise RuntimeError(
                f"not the same work: final train loss {loss_hand} by hand, {loss_project} by the project"
            )
        hand.append(t_hand)
        project.append(t_project)
    return statistics.median(hand), statistics.median(project)


def run(quick: bool = False) -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (overrides, epochs, quick_epochs) in WORKLOADS.items():
            epochs = quick_epochs if quick else epochs
            # Warm-up (imports, caches such as MNIST-1D's generated file), not timed.
            measure(overrides, 1, 1, tmp, str(Path(tmp) / "warmup"))
            hand, project = measure(overrides, epochs, 1 if quick else 3, tmp, str(Path(tmp) / "bench"))
            ratio = project / hand
            rows.append(
                (
                    f"overhead: {name}, {epochs} epochs, project / hand loop",
                    hand,
                    project,
                    ratio,
                    "<= 1.05",
                    ratio <= 1.05,
                )
            )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="framework overhead vs a hand-written loop")
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(f"{row[0]}: hand {row[1]:.3f} s, project {row[2]:.3f} s, ratio {row[3]:.3f} (target {row[4]})")
