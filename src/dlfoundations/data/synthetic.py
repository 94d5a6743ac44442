"""Synthetic linear regression for the random-features double-descent experiment (MFDNN HW6 P5).

beta* ~ N(0, I_d) normalised to unit norm; x ~ N(0, I_d); y = beta*^T x, plus N(0, noise_std^2)
on the training targets only. Everything is drawn from ``seed``.

Two streams (``stream``):

* ``torch`` (default): the run's ``data`` stream (:mod:`dlfoundations.seeding`); beta, then all inputs, then the
  training noise.
* ``numpy``: the course script's stream as far as this project knows it: numpy's legacy global
  generator, ``np.random.seed(seed)`` (the course uses 0), then in this order ``beta = randn(d)``,
  ``X_train = randn(n_train, d)``, ``noise = randn(n_train)``, ``X_val = randn(n_val, d)``,
  ``X_test = randn(n_test, d)``; the random-features model then continues the same stream (see
  :class:`dlfoundations.models.RandomFeatures`). The course script itself is not part of this
  project: this order is reconstructed from its description, not checked against it, so a figure
  from this stream matches the course's solution point for point only if the order is right.
"""

import numpy as np
import torch

from dlfoundations.data.base import InMemoryDataModule, Splits
from dlfoundations.errors import UserError
from dlfoundations.seeding import DATA, generator

STREAMS = ("torch", "numpy")


def numpy_course_stream(
    seed: int, dim: int, sizes: tuple[int, int, int], noise_std: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.random.RandomState]:
    """(beta, x_train, y_train, x_val, y_val, x_test, y_test, rng) drawn in the course's assumed
    order from ``np.random.RandomState(seed)`` (the legacy generator behind ``np.random.seed``);
    ``rng`` is left where the data ends, for the random features."""
    rng = np.random.RandomState(seed)
    n_train, n_val, n_test = sizes
    beta = rng.randn(dim)
    beta /= np.linalg.norm(beta)
    x_train = rng.randn(n_train, dim)
    y_train = x_train @ beta + noise_std * rng.randn(n_train)
    x_val = rng.randn(n_val, dim)
    x_test = rng.randn(n_test, dim)
    return beta, x_train, y_train, x_val, x_val @ beta, x_test, x_test @ beta, rng


class LinearRegressionDataModule(InMemoryDataModule):
    """``train_size`` noisy and ``val_size``/``test_size`` noiseless samples of a random linear map."""

    def __init__(
        self,
        dim: int = 35,
        train_size: int = 300,
        val_size: int = 60,
        test_size: int = 30,
        noise_std: float = 0.5,
        dtype: str = "float64",
        stream: str = "torch",
        **kwargs,
    ) -> None:
        kwargs.setdefault("num_classes", 1)
        super().__init__(**kwargs)
        if min(dim, train_size, test_size) < 1 or val_size < 0 or noise_std < 0:
            raise UserError("need data.dim, train_size, test_size >= 1, val_size >= 0, noise_std >= 0")
        if label_noise := kwargs.get("label_noise"):
            raise UserError(f"data.label_noise={label_noise} means nothing for regression; use data.noise_std")
        if stream not in STREAMS:
            raise UserError(f"data.stream={stream!r} is not known; use one of {STREAMS}")
        self.dim, self.sizes, self.noise_std, self.stream = dim, (train_size, val_size, test_size), noise_std, stream
        self.dtype = getattr(torch, dtype)

    def load_splits(self) -> Splits:
        if self.stream == "numpy":
            arrays = numpy_course_stream(self.seed, self.dim, self.sizes, self.noise_std)[1:7]
            return Splits(*(torch.from_numpy(np.ascontiguousarray(a)).to(self.dtype) for a in arrays))
        g = generator(self.seed, DATA)
        beta = torch.randn(self.dim, generator=g, dtype=torch.float64)
        beta /= beta.norm()
        a, b, c = self.sizes
        x = torch.randn(a + b + c, self.dim, generator=g, dtype=torch.float64)
        y = x @ beta
        y[:a] += self.noise_std * torch.randn(a, generator=g, dtype=torch.float64)
        x, y = x.to(self.dtype), y.to(self.dtype)
        return Splits(x[:a], y[:a], x[a : a + b], y[a : a + b], x[a + b :], y[a + b :])
