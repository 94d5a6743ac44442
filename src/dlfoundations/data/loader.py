"""An in-memory batch loader: the whole dataset is a few tensors, batches are index gathers.

No per-sample Python work, no worker processes (the airbench recipe). The permutation of an
epoch depends only on (seed, epoch), so a resumed run sees the same data order as an
uninterrupted one. Under DDP each rank takes its own strided shard of the same permutation.

With ``steps_per_call=K > 1`` each item is a :class:`BatchGroup` of K consecutive batches (the
last one of an epoch may hold fewer), for a task that runs K optimizer steps in one Lightning
``training_step`` call; the batches and their order are exactly those of ``steps_per_call=1``.
"""

from collections.abc import Iterator

import torch
from torch import Tensor


class BatchGroup:
    """Consecutive batches for one ``training_step`` call; iterating yields the batches.

    Lightning moves it to the device with one ``.to`` call (it treats any object with ``.to`` as a
    unit) instead of walking a list of K tuples on every step.
    """

    def __init__(self, batches) -> None:
        self.batches: list[tuple[Tensor, ...]] = list(batches)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index):
        return BatchGroup(self.batches[index]) if isinstance(index, slice) else self.batches[index]

    def to(self, *args, **kwargs) -> "BatchGroup":
        return BatchGroup(tuple(t.to(*args, **kwargs) for t in batch) for batch in self.batches)


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
        steps_per_call: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError("all tensors of a TensorBatchLoader need the same length")
        self.tensors = tensors
        self.batch_size, self.drop_last, self.steps_per_call = batch_size, drop_last, steps_per_call
        self.rank, self.world_size = rank, world_size
        self.sampler = EpochPermutation(n, shuffle, seed)
        self.batch_sampler = None  # Lightning looks for a DataLoader's sampler attributes
        # Every rank gets the same number of samples, or DDP would wait for a missing batch.
        self.samples_per_rank = n // world_size if world_size > 1 else n

    @property
    def num_batches(self) -> int:
        """Batches per epoch (optimizer steps, whatever ``steps_per_call`` is)."""
        if self.drop_last:
            return self.samples_per_rank // self.batch_size
        return -(-self.samples_per_rank // self.batch_size)

    def __len__(self) -> int:
        return -(-self.num_batches // self.steps_per_call)

    def __iter__(self) -> Iterator[tuple[Tensor, ...] | BatchGroup]:
        order = self.sampler.indices()
        if self.world_size > 1:
            order = order[: self.samples_per_rank * self.world_size][self.rank :: self.world_size]
        order = order[: self.num_batches * self.batch_size].to(self.tensors[0].device)
        if self.steps_per_call == 1:
            for i in range(self.num_batches):
                index = order[i * self.batch_size : (i + 1) * self.batch_size]
                yield tuple(t[index] for t in self.tensors)
            return
        # One gather per call, split into views: K batches cost one index operation, not K.
        span = self.batch_size * self.steps_per_call
        for start in range(0, len(order), span):
            index = order[start : start + span]
            parts = [t[index].split(self.batch_size) for t in self.tensors]
            yield BatchGroup(zip(*parts))
