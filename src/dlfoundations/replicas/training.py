"""What the training step and the callbacks need to treat R replicas as R runs."""

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

import torch
from torch import Tensor, nn

V = TypeVar("V")
_PREFIX = re.compile(r"^replica_(\d+)/")


def replica_prefix(k: int) -> str:
    """The prefix of replica ``k``'s metric names and its folder in the run dir: ``replica_<k>/``."""
    return f"replica_{k}/"


def split_by_replica(values: Mapping[str, V]) -> dict[int | None, dict[str, V]]:
    """``{"replica_1/test/acc": v, "x": w}`` -> ``{1: {"test/acc": v}, None: {"x": w}}``."""
    out: dict[int | None, dict[str, V]] = {}
    for name, value in values.items():
        match = _PREFIX.match(name)
        key = int(match.group(1)) if match else None
        out.setdefault(key, {})[name[match.end() :] if match else name] = value
    return out


def runs_in(parts: Mapping[int | None, object]) -> list[int | None]:
    """The runs a :func:`split_by_replica` result holds: its replicas, or [None] for a plain run."""
    replicas = sorted(k for k in parts if k is not None)
    return [*replicas] if replicas else [None]


@torch.no_grad()
def clip_norm_per_replica(parameters: Iterable[nn.Parameter], max_norm: float) -> Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for each replica of stacked parameters (leading dim R):
    replica k's gradients are scaled by ``min(1, max_norm / (norm_k + 1e-6))``, with norm_k the
    2-norm over all of its gradients, as its separate run clips. Returns the norms (before clipping)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    per_tensor = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])  # [tensors, R]
    norms = torch.linalg.vector_norm(per_tensor, dim=0)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))).to(g.dtype))
    return norms
