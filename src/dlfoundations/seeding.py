"""One seed derivation for every random stream of a run.

A run has one ``seed`` (0 <= seed < 2**32). Each stream that draws from it (weight init and the
training-time randomness of the global generator, label noise, input corruption, split draws,
the draw of a synthetic dataset, the shuffle of epoch e, the augmentation of batch b of epoch e
on rank r) gets its own generator seed from
``numpy.random.SeedSequence(entropy=seed, spawn_key=(stream, epoch, rank, batch))``, a hash of
the whole tuple, so two different tuples never start the same sequence (unlike
``seed * M + offset`` schemes, where the label-noise offset of one stream is the epoch number of
another). Keys have a fixed length, so (stream, 1) and (stream, 1, 0) cannot be confused.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from dlfoundations.errors import UserError

# Stream ids are part of every derived seed: never renumber one (it would change every result).
INIT, LABEL_NOISE, INPUT_CORRUPTION, SPLIT, SHUFFLE, AUGMENT, DATA = 0, 1, 2, 3, 4, 5, 6
STREAMS = {
    "init": INIT,
    "label_noise": LABEL_NOISE,
    "input_corruption": INPUT_CORRUPTION,
    "split": SPLIT,
    "shuffle": SHUFFLE,
    "augment": AUGMENT,
    "data": DATA,  # the draw of a synthetic dataset
}
SEED_RANGE = (0, 2**32 - 1)  # what seed_everything and the config schema accept


def stream_seed(seed: int, stream: int, epoch: int = 0, rank: int = 0, batch: int = 0) -> int:
    """The generator seed (63 bits) of ``stream`` for (``epoch``, ``rank``, ``batch``) of run ``seed``."""
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise UserError(
            f"seed {seed} (a run's seed, a replica's seed+k or a split_seed) is outside "
            f"[{SEED_RANGE[0]}, {SEED_RANGE[1]}]; use a smaller one"
        )
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(stream, epoch, rank, batch))
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


def generator(
    seed: int, stream: int, epoch: int = 0, rank: int = 0, batch: int = 0, device: str | torch.device = "cpu"
) -> torch.Generator:
    """A torch generator on ``device`` seeded with :func:`stream_seed`."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream, epoch, rank, batch))


def seed_run(seed: int) -> None:
    """Seed the global generators of a run: Python's and numpy's from ``seed`` (Lightning's
    ``seed_everything``), torch's (weight init, dropout) from the ``init`` stream."""
    L.seed_everything(seed, workers=True, verbose=False)
    torch.manual_seed(stream_seed(seed, INIT))
