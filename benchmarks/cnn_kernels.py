"""Is there a faster kernel path for the MNIST-1D CNN's step on this CPU? The project's ``CNN1d``
(experiment=double_descent_mnist1d_cnn: batch 100, SGD momentum 0.9, one thread as each of the
local launcher's workers has) timed per optimizer step three ways, alternating, medians of repeats:

- eager PyTorch with oneDNN convolutions (what the project runs: the baseline),
- eager PyTorch with oneDNN off (``torch.backends.mkldnn.flags(enabled=False)``: the native path),
- ``torch.compile`` of forward and loss (Inductor's generated CPU code; its compile time is
  reported, not counted).

Each row also gives the step's arithmetic (``torch.utils.flop_counter.FlopCounterMode``, forward
and backward) as a share of this core's float32 matmul rate (a 2048 x 2048 GEMM, same process):
how far the step is from the floor no kernel can beat. Ratio = alternative / eager oneDNN.

    python -m benchmarks.cnn_kernels [--quick]
"""

import argparse
import statistics
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from dlfoundations.models import CNN1d

WIDTHS = (6, 20, 50, 100)
BATCH, LENGTH = 100, 40


def matmul_rate(repeats: int = 10) -> float:
    """This core's float32 GEMM rate in FLOP/s (2048 x 2048, one thread)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * 2048**3 * repeats / (time.perf_counter() - start)


def stepper(width: int, compiled: bool) -> tuple[Callable[[], None], float]:
    """One SGD step of a fresh CNN1d on a fixed batch; and the seconds its first 3 steps took."""
    torch.manual_seed(0)
    model = CNN1d(width=width)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(BATCH, 1, LENGTH), torch.randint(0, 10, (BATCH,))

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)

    forward = torch.compile(loss_of) if compiled else loss_of

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        forward(x, y).backward()
        opt.step()

    start = time.perf_counter()
    for _ in range(3):
        step()
    return step, time.perf_counter() - start


def step_flops(width: int) -> int:
    model = CNN1d(width=width)
    x, y = torch.randn(BATCH, 1, LENGTH), torch.randint(0, 10, (BATCH,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def sweep_floor_minutes(rate: float, seeds: int = 3, cores: int = 2) -> tuple[float, int]:
    """The arithmetic of ``make reproduce``'s CNN sweep (the experiment's widths x ``seeds`` x its
    epochs x steps per epoch, training only) at ``cores`` x the GEMM rate, in minutes; and its width count."""
    path = Path(str(resources.files("dlfoundations.conf"))) / "experiment" / "double_descent_mnist1d_cnn.yaml"
    cfg = OmegaConf.load(path)
    widths = [int(w) for w in str(cfg.hydra.sweeper.params["model.width"]).split(",")]
    steps = int(cfg.trainer.max_epochs) * int(cfg.data.train_size) // int(cfg.data.batch_size)
    flops = sum(step_flops(w) for w in widths) * steps * seeds
    return flops / (cores * rate) / 60, len(widths)


def ms_per_step(step: Callable[[], None], steps: int, onednn: bool) -> float:
    with torch.backends.mkldnn.flags(enabled=onednn):
        for _ in range(20):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - start) / steps * 1e3


def run(quick: bool = False) -> list[tuple]:
    torch.set_num_threads(1)
    steps, repeats = (50, 1) if quick else (300, 3)
    rate = matmul_rate()
    print(f"float32 GEMM, one thread: {rate / 1e9:.1f} GFLOP/s")
    rows: list[tuple] = []
    for width in WIDTHS:
        eager, _ = stepper(width, compiled=False)
        native, _ = stepper(width, compiled=False)
        compiled, compile_s = stepper(width, compiled=True)
        times: dict[str, list[float]] = {"onednn": [], "native": [], "compiled": []}
        for _ in range(repeats):  # alternating
            times["onednn"].append(ms_per_step(eager, steps, onednn=True))
            times["native"].append(ms_per_step(native, steps, onednn=False))
            times["compiled"].append(ms_per_step(compiled, steps, onednn=True))
        ms = {k: statistics.median(v) for k, v in times.items()}
        floor_ms = step_flops(width) / rate * 1e3
        print(
            f"c={width}: oneDNN {ms['onednn']:.3f} ms, native {ms['native']:.3f} ms, compiled {ms['compiled']:.3f} ms "
            f"(compile + 3 steps {compile_s:.1f} s); arithmetic at the GEMM rate {floor_ms:.3f} ms "
            f"= {floor_ms / ms['onednn']:.0%} of the oneDNN step",
            flush=True,
        )
        base = ms["onednn"] / 1e3
        for name in ("native", "compiled"):
            label = f"MNIST-1D CNN c={width}, one SGD step, 1 thread: {name} / eager oneDNN"
            rows.append((label, base, ms[name] / 1e3, ms[name] / ms["onednn"], "report", True))
        rows.append(
            (
                f"MNIST-1D CNN c={width}: step's FLOPs at the GEMM rate / eager oneDNN step",
                base,
                floor_ms / 1e3,
                floor_ms / ms["onednn"],
                "report",
                True,
            )
        )
    minutes, n = sweep_floor_minutes(rate)
    print(
        f"the CNN sweep of make reproduce ({n} widths x 3 seeds, training steps only): {minutes:.1f} min of "
        "arithmetic at 2 cores' GEMM rate (measured: 28 min 20 s, RESULTS.md 'make reproduce')"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (a smoke run)")
    args = parser.parse_args()
    for name, base, project, ratio, _, _ in run(args.quick):
        print(f"{name:90} {base * 1e3:8.3f} ms {project * 1e3:8.3f} ms {ratio:6.3f}")


if __name__ == "__main__":
    main()
