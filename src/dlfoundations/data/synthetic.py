"""Synthetic linear regression for the random-features double-descent experiment (MFDNN HW6 P5).

beta* ~ N(0, I_d) normalised to unit norm; x ~ N(0, I_d); y = beta*^T x, plus N(0, noise_std^2)
on the training targets only. Everything is drawn from ``seed``.
"""

import torch

from dlfoundations.data.base import InMemoryDataModule, Splits
from dlfoundations.errors import UserError


class LinearRegressionDataModule(InMemoryDataModule):
    """``train_size`` noisy and ``val_size``/``test_size`` noiseless samples of a random linear map."""

    def __init__(self, dim: int = 35, train_size: int = 300, val_size: int = 60, test_size: int = 30,
                 noise_std: float = 0.5, dtype: str = "float64", **kwargs) -> None:
        kwargs.setdefault("num_classes", 1)
        super().__init__(**kwargs)
        if min(dim, train_size, test_size) < 1 or val_size < 0 or noise_std < 0:
            raise UserError("need data.dim, train_size, test_size >= 1, val_size >= 0, noise_std >= 0")
        if label_noise := kwargs.get("label_noise"):
            raise UserError(f"data.label_noise={label_noise} means nothing for regression; use data.noise_std")
        self.dim, self.sizes, self.noise_std = dim, (train_size, val_size, test_size), noise_std
        self.dtype = getattr(torch, dtype)

    def load_splits(self) -> Splits:
        g = torch.Generator().manual_seed(self.seed)
        beta = torch.randn(self.dim, generator=g, dtype=torch.float64)
        beta /= beta.norm()
        a, b, c = self.sizes
        x = torch.randn(a + b + c, self.dim, generator=g, dtype=torch.float64)
        y = x @ beta
        y[:a] += self.noise_std * torch.randn(a, generator=g, dtype=torch.float64)
        x, y = x.to(self.dtype), y.to(self.dtype)
        return Splits(x[:a], y[:a], x[a : a + b], y[a : a + b], x[a + b :], y[a + b :])
