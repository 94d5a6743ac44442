"""MNIST-1D (Greydanus 2020), generated locally with the ``mnist1d`` package: 40-d signals."""

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mnist1d.data import get_dataset_args, make_dataset

from dlfoundations.atomic import atomic_write
from dlfoundations.data.base import InMemoryDataModule, Splits
from dlfoundations.errors import UserError


class MNIST1DDataModule(InMemoryDataModule):
    """``train_size + val_size + test_size`` samples from ``make_dataset`` (the package's default
    generator settings; 4000/0/1000 with ``dataset_seed=42`` is the standard MNIST-1D set)."""

    def __init__(
        self,
        train_size: int = 4000,
        val_size: int = 0,
        test_size: int = 1000,
        dataset_seed: int = 42,
        cache_dir: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        total = train_size + val_size + test_size
        if min(train_size, test_size) < 1 or val_size < 0 or total % 10:
            raise UserError(
                f"data.train_size + val_size + test_size = {total} must be a multiple of 10 "
                "(MNIST-1D draws the same number of samples per class), with train and test >= 1"
            )
        self.sizes, self.dataset_seed = (train_size, val_size, test_size), dataset_seed
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def _args(self) -> tuple[Any, dict[str, Any], Path | None]:
        """The generator's arguments, the cache key (every generator setting) and the cache file."""
        a, b, c = self.sizes
        args = get_dataset_args()
        args.num_samples, args.train_split, args.seed = a + b + c, a / (a + b + c), self.dataset_seed
        key = {k: v for k, v in vars(args).items() if k != "url"}
        if self.cache_dir is None:
            return args, key, None
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return args, key, self.cache_dir / "mnist1d" / f"{digest}.pt"

    def files_to_write(self) -> list[Path]:
        cache = self._args()[2]
        return [cache] if cache is not None and not cache.exists() else []

    def _generate(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Generating takes seconds (per-sample scipy work): cache the tensors, keyed by every
        # generator setting, so sweeps of many short jobs generate once.
        args, key, cache = self._args()
        if cache is not None:
            if cache.exists():
                try:
                    data = torch.load(cache, weights_only=True)
                    return data["x"], data["y"]
                except Exception:  # a damaged cache file is regenerated, never trusted
                    pass
        # make_dataset reseeds the global RNGs; keep the run's own RNG state untouched.
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            d = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        x = torch.from_numpy(np.concatenate([d["x"], d["x_test"]])).float()
        y = torch.from_numpy(np.concatenate([d["y"], d["y_test"]])).long()
        if cache is not None:
            try:
                atomic_write(cache, lambda tmp: torch.save({"x": x, "y": y, "args": json.dumps(key)}, tmp))
            except OSError as err:
                raise UserError(
                    f"data.cache_dir={self.cache_dir} is not writable ({err.strerror or err}): MNIST-1D caches its "
                    "generated data there; point paths.data_dir (or $DLF_DATA_DIR) at a writable directory, "
                    "or set data.cache_dir=null"
                ) from err
        return x, y

    def load_splits(self) -> Splits:
        a, b, c = self.sizes
        x, y = self._generate()
        return Splits(x[:a], y[:a], x[a : a + b], y[a : a + b], x[a + b :], y[a + b :])
