"""An in-memory batch loader: the whole dataset is a few tensors, batches are index gathers.

No per-sample Python work, no worker processes (the airbench recipe). The permutation of an
epoch depends only on (seed, epoch), so a resumed run sees the same data order as an
uninterrupted one. Under DDP each rank takes its own strided shard of the same permutation.
"""

from collections.abc import Iterator

import torch
from torch import Tensor


class EpochPermutation:
    """Index order for one epoch; Lightning calls ``set_epoch`` on it (it is the loader's sampler)."""

    def __init__(self, n: int, shuffle: bool, seed: int) -> None:
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=generator)


class TensorBatchLoader:
    """Yields tuples of batches of ``tensors`` (all with the same first dimension)."""

    def __init__(
        self,
        tensors: tuple[Tensor, ...],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError("all tensors of a TensorBatchLoader need the same length")
        self.tensors = tensors
        self.batch_size, self.drop_last = batch_size, drop_last
        self.rank, self.world_size = rank, world_size
        self.sampler = EpochPermutation(n, shuffle, seed)
        self.batch_sampler = None  # Lightning looks for a DataLoader's sampler attributes
        # Every rank gets the same number of samples, or DDP would wait for a missing batch.
        self.samples_per_rank = n // world_size if world_size > 1 else n

    def __len__(self) -> int:
        if self.drop_last:
            return self.samples_per_rank // self.batch_size
        return -(-self.samples_per_rank // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        order = self.sampler.indices()
        if self.world_size > 1:
            order = order[: self.samples_per_rank * self.world_size][self.rank :: self.world_size]
        order = order.to(self.tensors[0].device)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield tuple(t[index] for t in self.tensors)
