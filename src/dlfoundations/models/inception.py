"""Inception modules (Szegedy et al. 2015; MFDNN HW5 P5): naive and with 1x1 bottlenecks.

On a 256x32x32 input the seed compares the naive module (1x1: 128, 3x3: 192, 5x5: 96, 3x3 max-pool,
concatenated) with the bottleneck module (3x3 and 5x5 branches reduced to 64 channels by 1x1 convs
first, and a 64-channel 1x1 projection after the pool): 1,089,952 vs 346,720 parameters.
ReLU after every conv.
"""

import torch
from torch import nn


def _conv_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU())


class NaiveInception(nn.Module):
    def __init__(self, in_channels: int = 256, c1: int = 128, c3: int = 192, c5: int = 96) -> None:
        super().__init__()
        self.branch1 = _conv_relu(in_channels, c1, 1)
        self.branch3 = _conv_relu(in_channels, c3, 3)
        self.branch5 = _conv_relu(in_channels, c5, 5)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.pool(x)], dim=1)


class BottleneckInception(nn.Module):
    def __init__(
        self,
        in_channels: int = 256,
        c1: int = 128,
        c3: int = 192,
        c5: int = 96,
        reduce3: int = 64,
        reduce5: int = 64,
        pool_proj: int = 64,
    ) -> None:
        super().__init__()
        self.branch1 = _conv_relu(in_channels, c1, 1)
        self.branch3 = nn.Sequential(_conv_relu(in_channels, reduce3, 1), _conv_relu(reduce3, c3, 3))
        self.branch5 = nn.Sequential(_conv_relu(in_channels, reduce5, 1), _conv_relu(reduce5, c5, 5))
        self.pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv_relu(in_channels, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.pool(x)], dim=1)
