"""Batch-level data augmentation on the device: no per-sample Python or PIL work."""

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop_flip(x: Tensor, padding: int, flip: bool, generator: torch.Generator) -> Tensor:
    """Zero-pad by ``padding``, crop back to the original size at a random offset per image, and
    (if ``flip``) mirror half of the images left-right: the standard CIFAR augmentation."""
    n, _, h, w = x.shape
    device = x.device
    if padding > 0:
        padded = F.pad(x, (padding,) * 4)
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
        rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]  # n,1,h,1
        cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]  # n,1,1,w
        batch = torch.arange(n, device=device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        mirror = torch.rand(n, generator=generator, device=device) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    return x
