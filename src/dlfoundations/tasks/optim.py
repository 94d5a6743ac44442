"""Optimizers from config partials, with parameter groups that exempt BN affine parameters and
biases from weight decay (``optimizer.no_decay: [bn, bias]``)."""

import functools
from collections.abc import Callable, Iterable

import torch
from torch import nn

from dlfoundations.models.layers import BATCH_NORMS

_NORMS = (*BATCH_NORMS, nn.LayerNorm, nn.GroupNorm)
NO_DECAY_KINDS = ("bn", "bias")


def param_groups(model: nn.Module, weight_decay: float, no_decay: Iterable[str]) -> list[dict]:
    """Two groups: parameters with ``weight_decay``, and those named by ``no_decay`` (``bn``: all
    parameters of normalization layers; ``bias``: every bias) with weight decay 0."""
    no_decay = set(no_decay)
    if no_decay - set(NO_DECAY_KINDS):
        raise ValueError(f"optimizer.no_decay={sorted(no_decay)}: use some of {list(NO_DECAY_KINDS)}")
    exempt: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if ("bn" in no_decay and isinstance(module, _NORMS)) or ("bias" in no_decay and name == "bias"):
                exempt.add(id(p))
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) not in exempt], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in exempt], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(factory: Callable[..., torch.optim.Optimizer], model: nn.Module) -> torch.optim.Optimizer:
    """Call a config partial (e.g. ``torch.optim.SGD`` with lr, ...) on ``model``'s parameters;
    a ``no_decay`` keyword in the partial becomes parameter groups."""
    if isinstance(factory, functools.partial) and "no_decay" in factory.keywords:
        kwargs = dict(factory.keywords)
        no_decay = kwargs.pop("no_decay") or []
        groups = param_groups(model, kwargs.get("weight_decay", 0.0), no_decay)
        if not kwargs.get("weight_decay"):  # no decay to exempt from: one group, one loop per step
            groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
        return factory.func(*factory.args, groups, **kwargs)
    return factory(params=model.parameters())
