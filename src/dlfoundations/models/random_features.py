"""Random ReLU features: f(x) = theta^T ReLU(W x), W fixed with W_ij ~ N(0, 1/p), only theta fitted."""

import torch
from torch import nn


class RandomFeatures(nn.Module):
    """``width`` = p random features of ``in_features`` inputs; ``theta`` is the only parameter."""

    def __init__(self, in_features: int = 35, width: int = 100, out_features: int = 1) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"model.width (the number of features p) must be >= 1, got {width}")
        # A buffer, not a parameter: drawn once (from the run's seed) and never trained.
        self.register_buffer("W", torch.randn(width, in_features) / width**0.5)
        self.theta = nn.Linear(width, out_features, bias=False)
        nn.init.zeros_(self.theta.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W.to(x.dtype).T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta(self.features(x).to(self.theta.weight.dtype)).squeeze(-1)
