"""Inference time of BN models vs their folded versions, same process, medians.

    python -m benchmarks.fold_bn [--batch 64] [--repeats 20] [--threads N]

Prints, per model, the median forward time with BN (eval mode) and folded, their ratio
(folded / BN; below 1 means folding made inference faster) and the max abs difference.
"""

import argparse

import torch
from torch import nn

from dlfoundations.analysis import fold_batchnorm, median_seconds
from dlfoundations.models import VGG, ResNet18, SmallNet

MODELS = {
    "smallNet (CIFAR, 3x32x32)": lambda: SmallNet(),
    "ResNet18 (CIFAR stem, 3x32x32)": lambda: ResNet18(),
    "VGG16-BN (CIFAR head, 3x32x32)": lambda: VGG(batch_norm=True),
}


def with_running_stats(net: nn.Module, batch: int) -> nn.Module:
    """Give every BN non-trivial affine parameters and running statistics, then switch to eval."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(batch, 3, 32, 32) * 1.5 + 0.3)
    return net.eval()


def run(quick: bool = False) -> list[tuple]:
    """Rows for the benchmark runner: folded vs BN inference time (ratio = folded / BN)."""
    rows, batch, repeats = [], 64, 5 if quick else 20
    with torch.no_grad():
        for name, build in MODELS.items():
            net = with_running_stats(build(), batch)
            folded = fold_batchnorm(net)
            x = torch.randn(batch, 3, 32, 32)
            t_bn, t_folded = median_seconds(lambda: net(x), repeats), median_seconds(lambda: folded(x), repeats)
            rows.append((f"BN folding: {name}, folded / BN", t_bn, t_folded, t_folded / t_bn, "report", True))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"CPU threads: {torch.get_num_threads()}, batch {args.batch}, median of {args.repeats}")
    print(f"{'model':34} {'BN ms':>9} {'folded ms':>10} {'ratio':>7} {'max abs diff':>13}")
    with torch.no_grad():
        for name, build in MODELS.items():
            net = with_running_stats(build(), args.batch)
            folded = fold_batchnorm(net)
            x = torch.randn(args.batch, 3, 32, 32)
            diff = (net(x) - folded(x)).abs().max().item()
            t_bn = median_seconds(lambda: net(x), args.repeats)
            t_folded = median_seconds(lambda: folded(x), args.repeats)
            print(f"{name:34} {1e3 * t_bn:9.2f} {1e3 * t_folded:10.2f} {t_folded / t_bn:7.3f} {diff:13.2e}")


if __name__ == "__main__":
    main()
