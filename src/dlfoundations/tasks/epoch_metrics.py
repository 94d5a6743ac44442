"""Per-epoch loss and accuracy of one stage, kept on the device.

A step records its loss and its predictions (one ``detach`` and one ``argmax``, appended to lists);
the sums are formed once, when the epoch's metrics are logged. Summing at every step took six
more small tensor ops per optimizer step, a measurable share of a step of the small models here
(benchmarks/RESULTS.md); the lists hold an epoch's predictions and labels (two int64 per sample)
and never sync with the host.
"""

import torch
from torch import Tensor


class EpochMetrics:
    """Losses and predictions of one stage over one epoch.

    ``losses`` are each step's mean loss (shape ``[]``, or ``[R]`` for R replicas), ``logits``
    ``[B, C]`` (``[R, B, C]``), labels ``[B]`` (``[R, B]``).
    """

    def __init__(self) -> None:
        self._losses: list[Tensor] = []
        self._preds: list[Tensor] = []
        self._labels: list[Tensor] = []
        self._counts: list[int] = []

    @property
    def count(self) -> int:
        """Samples seen this epoch (of one replica)."""
        return sum(self._counts)

    def update(self, losses: Tensor, logits: Tensor, labels: Tensor) -> None:
        # argmax of a tensor that requires grad records nothing for autograd (integer output).
        self._losses.append(losses.detach())
        self._preds.append(logits.argmax(-1))
        self._labels.append(labels)
        self._counts.append(labels.shape[-1])

    def sums(self) -> Tensor:
        """``[3, *R]``: the summed loss (each step's mean times its batch size), the number of
        correct predictions and the number of samples, as floats of the losses' dtype."""
        losses = torch.stack(self._losses)  # [steps, *R]
        counts = torch.tensor(self._counts, dtype=losses.dtype, device=losses.device)
        loss_sum = (losses * counts.view(-1, *([1] * (losses.dim() - 1)))).sum(0)
        correct = (torch.cat(self._preds, -1) == torch.cat(self._labels, -1)).sum(-1)
        return torch.stack([loss_sum, correct.to(losses.dtype), torch.full_like(loss_sum, float(self.count))])

    def nonfinite(self) -> Tensor:
        """Bool ``[*R]``: whether a step's loss was NaN/inf this epoch (no host sync)."""
        return ~torch.isfinite(torch.stack(self._losses)).all(0)
