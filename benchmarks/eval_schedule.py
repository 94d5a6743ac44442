"""Cost of epoch-wise metrics: a double-descent run with its evaluation schedule vs without.

The project's experiment=double_descent evaluates train (noisy and clean labels) and test error at
25 log-spaced epochs of 500 (callbacks.eval_schedule). The baseline is the same run with no
per-epoch evaluation (data.eval_sets=[] callbacks.eval_schedule=null). Both skip the final test
loop and checkpoints, so the difference is the scheduled evaluations alone. Repeats alternate,
medians count. Ratio = with / without; target <= 1.10 (issue: at most 10% over the run without).

    python -m benchmarks.eval_schedule [--quick]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from dlfoundations.config.compose import compose_config
from dlfoundations.run.train import main

# name -> model overrides; 500 epochs with 25 evaluations (quick: 100 epochs with 5, the same share)
WORKLOADS = {
    "epoch-wise metrics, 25 log-spaced evaluations of 3 sets (MLP 40-100-100-10, double_descent)": ["model.width=100"],
    "epoch-wise metrics, 25 log-spaced evaluations of 3 sets (MLP 40-300-300-10, double_descent)": ["model.width=300"],
}
COMMON = [
    "experiment=double_descent",
    "test=false",
    "print_config=false",
    "logger=csv",
    "optimized_metric=train/loss",
    "callbacks.model_checkpoint=null",  # checkpoints are not what this measures (and the runs differ in them)
]
WITHOUT = ["data.eval_sets=[]", "callbacks.eval_schedule=null"]


def _seconds(overrides: list[str], out: Path) -> float:
    cfg = compose_config(overrides, str(out))
    start = time.perf_counter()
    main(cfg)
    return time.perf_counter() - start


def run(quick: bool = False) -> list[tuple]:
    repeats = 1 if quick else 3
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in list(WORKLOADS.items())[: 1 if quick else None]:
            n, evals = (100, 5) if quick else (500, 25)
            base = [*COMMON, *model, f"trainer.max_epochs={n}", f"callbacks.eval_schedule.num={evals}"]
            _seconds([*base, *WITHOUT], Path(tmp) / "warmup")  # data generated and cached, imports warm
            without, with_ = [], []
            for r in range(repeats):
                without.append(_seconds([*base, *WITHOUT], Path(tmp) / f"without{r}"))
                with_.append(_seconds(base, Path(tmp) / f"with{r}"))
            b, p = statistics.median(without), statistics.median(with_)
            rows.append((f"{name}, {n} epochs, {evals} evaluations", b, p, p / b, "<= 1.10", p / b <= 1.10))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for row in run(args.quick):
        print(row)
