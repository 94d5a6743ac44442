"""Fully connected networks: ``in_features -> width x depth -> num_classes``."""

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class MLP(nn.Module):
    """An MLP with ``depth`` hidden layers of ``width`` units (or explicit ``hidden_sizes``).

    Inputs of any shape are flattened, so the same MLP runs on MNIST-1D signals and MNIST images.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int = 10,
        width: int = 100,
        depth: int = 2,
        hidden_sizes: Sequence[int] | None = None,
        activation: str = "relu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={activation!r} is not known; use one of {sorted(ACTIVATIONS)}")
        sizes = list(hidden_sizes) if hidden_sizes is not None else [width] * depth
        if any(s < 1 for s in sizes) or depth < 0:
            raise ValueError(f"model.width and model.depth must be >= 1, got hidden sizes {sizes}")
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        for size in sizes:
            layers += [nn.Linear(prev, size, bias=bias), ACTIVATIONS[activation]()]
            prev = size
        layers.append(nn.Linear(prev, num_classes, bias=bias))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ResidualMLP(nn.Module):
    """in_features -> width, then ``depth`` residual blocks x + act(Linear(x)), then -> num_classes."""

    def __init__(
        self, in_features: int, num_classes: int = 10, width: int = 64, depth: int = 20, activation: str = "relu"
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={activation!r} is not known; use one of {sorted(ACTIVATIONS)}")
        if width < 1 or depth < 0:
            raise ValueError(f"model.width must be >= 1 and model.depth >= 0, got {width}, {depth}")
        self.flatten = nn.Flatten()
        self.input = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), ACTIVATIONS[activation]()) for _ in range(depth)
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input(self.flatten(x))
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)
