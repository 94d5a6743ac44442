"""Random ReLU features: f(x) = theta^T ReLU(W x), W fixed with W_ij ~ N(0, 1/p), only theta fitted."""

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn


class RandomFeatures(nn.Module):
    """``width`` = p random features of ``in_features`` inputs; ``theta`` is the only parameter.

    ``stream="torch"`` draws W from torch's global generator (seeded by the run). ``stream="numpy"``
    continues the course script's numpy stream (see :mod:`dlfoundations.data.synthetic`): after the
    data (``data_spec``: seed, dim, [train, val, test] sizes, noise_std), the script draws one W per
    p of its sweep ``grid_start, grid_start + grid_step, ...`` in that order (an assumption, stated
    there), so the W of p is the one drawn after the W of every smaller p of the grid.
    """

    def __init__(
        self,
        in_features: int = 35,
        width: int = 100,
        out_features: int = 1,
        stream: str = "torch",
        data_spec: dict | None = None,
        grid_start: int = 1,
        grid_step: int = 10,
    ) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"model.width (the number of features p) must be >= 1, got {width}")
        if stream == "numpy":
            W = numpy_course_features(width, in_features, data_spec or {}, grid_start, grid_step)
        elif stream == "torch":
            W = torch.randn(width, in_features) / width**0.5
        else:
            raise ValueError(f"model.stream={stream!r} is not known; use torch or numpy")
        # A buffer, not a parameter: drawn once (from the run's seed) and never trained.
        self.register_buffer("W", W)
        self.theta = nn.Linear(width, out_features, bias=False)
        nn.init.zeros_(self.theta.weight)

    W: torch.Tensor  # the buffer registered in __init__

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W.to(x.dtype).T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.theta(self.features(x).to(self.theta.weight.dtype)).squeeze(-1)


def numpy_course_features(
    width: int, dim: int, data_spec: dict, grid_start: int = 1, grid_step: int = 10
) -> torch.Tensor:
    """W (float64) of p = ``width`` from the course's assumed numpy stream: the data first, then
    ``randn(p', d) / sqrt(p')`` for every p' of the grid up to p."""
    from dlfoundations.data.synthetic import numpy_course_stream

    if width < grid_start or (width - grid_start) % grid_step:
        raise ValueError(
            f"model.stream=numpy replays the course sweep p = {grid_start}, {grid_start + grid_step}, ...; "
            f"model.width={width} is not on it (set model.grid_start/grid_step)"
        )
    sizes: Sequence[int] = data_spec.get("sizes", (300, 60, 30))
    rng = numpy_course_stream(
        int(data_spec.get("seed", 0)),
        dim,
        cast(tuple[int, int, int], tuple(sizes)),
        float(data_spec.get("noise_std", 0.5)),
    )[-1]
    for p in range(grid_start, width + 1, grid_step):
        W = rng.randn(p, dim) / p**0.5
    return torch.from_numpy(W)
