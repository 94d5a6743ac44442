"""Split-transform-merge blocks (ResNeXt; MFDNN HW6 P4) and a small classifier built from them.

Seed spec: the baseline bottleneck 256 -(1x1)-> 128 -(3x3)-> 128 -(1x1)-> 256, ReLU after each
conv (213,504 parameters), and the STM block of 32 *independent* paths 256 -(1x1)-> 4 -(3x3)-> 4
-(1x1)-> 256, ReLU after each conv, outputs summed with no ReLU after the sum (78,592 parameters).

Because every path ends in a ReLU, the grouped-convolution form must keep the 32 last 1x1 convs
apart: a grouped 1x1 conv to 32*256 channels, ReLU, then the sum over paths. It has the same
parameters and computes the same function (see :func:`stm_paths_to_grouped`).
"""

from typing import cast

import torch
from torch import nn

from dlfoundations.models.layers import norm2d


class BottleneckBlock(nn.Module):
    """The baseline: channels -> mid (1x1) -> mid (3x3) -> channels (1x1), ReLU after each conv."""

    def __init__(self, channels: int = 256, mid: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, mid, 1),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(mid, channels, 1),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _path(channels: int, path_width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, path_width, 1),
        nn.ReLU(),
        nn.Conv2d(path_width, path_width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(path_width, channels, 1),
        nn.ReLU(),
    )


class STMBlock(nn.Module):
    """``cardinality`` independent paths (each its own weights), outputs summed."""

    def __init__(self, channels: int = 256, cardinality: int = 32, path_width: int = 4) -> None:
        super().__init__()
        self.paths = nn.ModuleList(_path(channels, path_width) for _ in range(cardinality))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([path(x) for path in self.paths]).sum(0)


class GroupedSTMBlock(nn.Module):
    """The same block with grouped convolutions: one kernel launch per layer instead of 32."""

    def __init__(self, channels: int = 256, cardinality: int = 32, path_width: int = 4) -> None:
        super().__init__()
        self.channels, self.cardinality = channels, cardinality
        mid = cardinality * path_width
        self.reduce = nn.Conv2d(channels, mid, 1)  # all paths' first 1x1 convs, stacked
        self.transform = nn.Conv2d(mid, mid, 3, padding=1, groups=cardinality)
        self.expand = nn.Conv2d(mid, cardinality * channels, 1, groups=cardinality)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.expand(self.relu(self.transform(self.relu(self.reduce(x))))))
        return out.unflatten(1, (self.cardinality, self.channels)).sum(1)


@torch.no_grad()
def stm_paths_to_grouped(block: STMBlock) -> GroupedSTMBlock:
    """A :class:`GroupedSTMBlock` computing the same function as ``block`` (weights copied)."""
    paths = [cast(nn.Sequential, p) for p in block.paths]  # built by _path
    first, mid, last = (cast(nn.Conv2d, paths[0][i]) for i in (0, 2, 4))
    grouped = GroupedSTMBlock(first.in_channels, len(block.paths), first.out_channels)
    for dst, index in ((grouped.reduce, 0), (grouped.transform, 2), (grouped.expand, 4)):
        convs = [cast(nn.Conv2d, p[index]) for p in paths]
        dst.weight.copy_(torch.cat([c.weight for c in convs]))
        assert dst.bias is not None  # every conv here has a bias (the default)
        dst.bias.copy_(torch.cat([cast(torch.Tensor, c.bias) for c in convs]))
    assert mid.out_channels == first.out_channels and last.in_channels == first.out_channels
    return grouped


class STMNet(nn.Module):
    """A small CIFAR classifier: stem conv, ``num_blocks`` residual STM blocks (each followed by
    BN-ReLU and a 2x2 max-pool), global average pool, Linear."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 64,
        cardinality: int = 32,
        path_width: int = 4,
        num_blocks: int = 3,
        batch_norm: bool = True,
        grouped: bool = True,
    ) -> None:
        super().__init__()
        if min(width, cardinality, path_width, num_blocks) < 1:
            raise ValueError("model.width, cardinality, path_width and num_blocks must be >= 1")
        block = GroupedSTMBlock if grouped else STMBlock
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=not batch_norm), norm2d(width, batch_norm), nn.ReLU()
        )
        self.blocks = nn.ModuleList(block(width, cardinality, path_width) for _ in range(num_blocks))
        self.norms = nn.ModuleList(norm2d(width, batch_norm) for _ in range(num_blocks))
        self.relu, self.pool = nn.ReLU(), nn.MaxPool2d(2)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block, norm in zip(self.blocks, self.norms):
            x = self.pool(self.relu(norm(x + block(x))))
        return self.fc(x.mean((2, 3)))
