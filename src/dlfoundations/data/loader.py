"""An in-memory batch loader: the whole dataset is a few tensors, batches are index gathers.

No per-sample Python work, no worker processes (the airbench recipe). The permutation of an
epoch depends only on (seed, epoch), and a batch transform (augmentation) draws its randomness
from (seed, epoch, rank, batch index), each through :mod:`dlfoundations.seeding` (the shuffle and
augmentation streams), so a resumed run sees the same data as an uninterrupted one. Under DDP
each rank takes its own strided shard of the same permutation.

The loader knows nothing of how many optimizer steps the task runs per Lightning call: it yields
one batch at a time, and its length is the number of batches of an epoch.
"""

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from dlfoundations.seeding import AUGMENT, SHUFFLE, generator

# A batch transform: (batch, generator) -> batch, e.g. random crops and flips of the inputs.
BatchTransform = Callable[[tuple[Tensor, ...], torch.Generator], tuple[Tensor, ...]]


class EpochPermutation:
    """Index order for one epoch; Lightning calls ``set_epoch`` on it (it is the loader's sampler)."""

    def __init__(self, n: int, shuffle: bool, seed: int) -> None:
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        return torch.randperm(self.n, generator=generator(self.seed, SHUFFLE, epoch=self.epoch))


class TensorBatchLoader:
    """Yields tuples of batches of ``tensors`` (all with the same first dimension).

    ``transform`` (training only) is applied to each batch on the tensors' device with a generator
    seeded from (``seed``, epoch, rank, batch index): the run's augmentation stream.
    """

    def __init__(
        self,
        tensors: tuple[Tensor, ...],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        transform: BatchTransform | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError("all tensors of a TensorBatchLoader need the same length")
        self.tensors = tensors
        self.batch_size, self.drop_last = batch_size, drop_last
        self.rank, self.world_size = rank, world_size
        self.transform, self.seed = transform, seed
        self.sampler = EpochPermutation(n, shuffle, seed)
        self.batch_sampler = None  # Lightning looks for a DataLoader's sampler attributes
        # Every rank gets the same number of samples, or DDP would wait for a missing batch.
        self.samples_per_rank = n // world_size if world_size > 1 else n

    def __len__(self) -> int:
        """Batches per epoch."""
        if self.drop_last:
            return self.samples_per_rank // self.batch_size
        return -(-self.samples_per_rank // self.batch_size)

    def _generator(self, batch_index: int) -> torch.Generator:
        device = self.tensors[0].device
        return generator(self.seed, AUGMENT, self.sampler.epoch, self.rank, batch_index, device=device)

    def epoch_order(self) -> Tensor:
        """The indices this rank serves in the current epoch, in order, on the tensors' device."""
        order = self.sampler.indices()
        if self.world_size > 1:
            order = order[: self.samples_per_rank * self.world_size][self.rank :: self.world_size]
        return order[: len(self) * self.batch_size].to(self.tensors[0].device)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        for i, index in enumerate(self.epoch_order().split(self.batch_size)):
            batch = tuple(t[index] for t in self.tensors)
            yield self.transform(batch, self._generator(i)) if self.transform is not None else batch
