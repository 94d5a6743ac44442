"""The random streams of a run never share a generator: not across streams, seeds, epochs,
ranks or batches (the label-noise permutation once was the shuffle of epoch 1)."""

import itertools
import math

import torch

from dlfoundations.data.base import InMemoryDataModule, Splits
from dlfoundations.seeding import SEED_RANGE, STREAMS, generator, seed_run, stream_seed


class IndexData(InMemoryDataModule):
    """Inputs are the item indices, so a batch says which items it holds."""

    def __init__(self, n: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n = n

    def load_splits(self) -> Splits:
        x = torch.arange(self.n, dtype=torch.float32).unsqueeze(1)
        y = torch.arange(self.n) % 10
        return Splits(x, y, x[:0], y[:0], x[:10], y[:10])


def test_noisy_share_of_early_batches_is_the_noise_rate_in_every_epoch():
    # experiment=double_descent's setting: 15% noise, 4,000 items, batches of 100.
    rate, n, batch, first_batches = 0.15, 4000, 100, 6
    m = batch * first_batches
    # Drawn without replacement the share has a smaller spread than this binomial one; 5 sd.
    bound = 5 * math.sqrt(rate * (1 - rate) / m)
    for seed in (0, 1, 2, 3, 4):
        dm = IndexData(n, label_noise=rate, batch_size=batch, seed=seed, on_device=False)
        dm.setup()
        loader = dm.train_dataloader()
        for epoch in range(4):
            loader.sampler.set_epoch(epoch)
            seen = torch.cat([x.long().squeeze(1) for x, _ in itertools.islice(loader, first_batches)])
            share = dm.noise_mask[seen].float().mean().item()
            assert abs(share - rate) <= bound, (
                f"seed {seed} epoch {epoch}: noisy share {share:.3f}, want {rate}±{bound:.3f}"
            )


def test_no_two_streams_start_alike_over_seeds_epochs_ranks_and_batches():
    seeds = (0, 1, 2, 7, 1_000_003, SEED_RANGE[1])
    grid = list(itertools.product(seeds, STREAMS.values(), range(5), range(2), range(5)))
    seeds_drawn = {stream_seed(*key) for key in grid}
    assert len(seeds_drawn) == len(grid), "two (seed, stream, epoch, rank, batch) keys share a generator seed"
    first_draws = {tuple(torch.rand(2, dtype=torch.float64, generator=generator(*key)).tolist()) for key in grid}
    assert len(first_draws) == len(grid), "two streams start with the same draws"


def test_seed_run_seeds_torch_from_the_init_stream_and_repeats():
    seed_run(5)
    assert torch.initial_seed() == stream_seed(5, STREAMS["init"])
    a = torch.randn(3)
    seed_run(5)
    assert torch.equal(a, torch.randn(3))


def test_a_seed_outside_the_range_is_a_one_line_user_error():
    import pytest

    from dlfoundations.errors import UserError

    with pytest.raises(UserError, match=r"^seed 4294967296 .* is outside \[0, 4294967295\]; use a smaller one$"):
        stream_seed(SEED_RANGE[1] + 1, STREAMS["init"])
