"""Zhang et al. (2017) corruptions: noisy labels and randomized inputs, drawn once from a seed."""

import torch
from torch import Tensor

LABEL_NOISE_KINDS = ("uniform", "incorrect")
INPUT_CORRUPTIONS = ("shuffled_pixels", "random_pixels", "gaussian")


def corrupt_labels(
    labels: Tensor,
    fraction: float,
    num_classes: int,
    generator: torch.Generator,
    kind: str = "uniform",
) -> tuple[Tensor, Tensor]:
    """Replace exactly ``round(fraction * n)`` labels, chosen at random, by random classes.

    ``kind="uniform"`` draws the new class uniformly from all classes (Zhang et al.; it may equal
    the true one), ``kind="incorrect"`` uniformly from the other classes (Nakkiran et al.).
    Returns the new labels and the boolean mask of the replaced positions.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label noise must be in [0, 1], got {fraction}")
    if kind not in LABEL_NOISE_KINDS:
        raise ValueError(f"label noise kind {kind!r} is not one of {LABEL_NOISE_KINDS}")
    n = len(labels)
    chosen = torch.randperm(n, generator=generator)[: round(fraction * n)]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[chosen] = True
    noisy = labels.clone()
    if kind == "uniform":
        noisy[chosen] = torch.randint(num_classes, (len(chosen),), generator=generator)
    else:
        shift = torch.randint(1, num_classes, (len(chosen),), generator=generator)
        noisy[chosen] = (labels[chosen] + shift) % num_classes
    return noisy, mask


def corrupt_inputs(
    splits: dict[str, Tensor], kind: str, generator: torch.Generator, reference: str = "train"
) -> dict[str, Tensor]:
    """Apply one of Zhang et al.'s input corruptions to every split, consistently.

    - ``shuffled_pixels``: one random permutation of the pixels, the same for every image.
    - ``random_pixels``: an independent random permutation for each image.
    - ``gaussian``: every image replaced by Gaussian noise with the mean and standard deviation
      of the ``reference`` split.
    """
    if kind not in INPUT_CORRUPTIONS:
        raise ValueError(f"input corruption {kind!r} is not one of {INPUT_CORRUPTIONS}")
    out = {}
    n_features = splits[reference][0].numel()
    shared_perm = torch.randperm(n_features, generator=generator)
    mean, std = splits[reference].float().mean(), splits[reference].float().std()
    for name, x in splits.items():
        flat = x.reshape(len(x), -1)
        if kind == "shuffled_pixels":
            flat = flat[:, shared_perm]
        elif kind == "random_pixels":
            perms = torch.argsort(torch.rand(flat.shape, generator=generator), dim=1)
            flat = torch.gather(flat, 1, perms)
        else:
            flat = torch.randn(flat.shape, generator=generator) * std + mean
        out[name] = flat.reshape(x.shape).to(x.dtype)
    return out
