"""Build R replicas of a run (``replicas=R``); dlfoundations.config.replicable refuses what would couple
them, dlfoundations.record.run_dir writes their results.

Replica ``k`` is the run with ``seed + k``: :func:`replica_config` is its config, and its datamodule
and net are built from it exactly as a separate run builds them (seeded the same way, in the same
order), so it starts from the separate run's initialization and sees its data.
"""

import logging
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig, open_dict
from torch import nn

from dlfoundations.errors import UserError
from dlfoundations.replicas.data import ReplicatedDataModule
from dlfoundations.replicas.nets import StackedNet, stack_nets
from dlfoundations.seeding import seed_run

log = logging.getLogger(__name__)


def pack_widths(cfg: DictConfig) -> list[int]:
    """``pack_widths``: the MLP widths a job trains at once (each with ``replicas`` seeds); []: the
    job's own ``model.width`` only."""
    return [int(w) for w in cfg.get("pack_widths") or []]


def num_replicas(cfg: DictConfig) -> int:
    """How many models the job trains stacked: ``replicas`` seeds x its ``pack_widths`` (if any)."""
    return int(cfg.get("replicas") or 1) * max(1, len(pack_widths(cfg)))


def replica_config(cfg: DictConfig, k: int) -> DictConfig:
    """The config of member ``k`` (widths outer, seeds inner): the run's config with ``seed + k % R``,
    ``model.width`` the (k // R)-th of ``pack_widths`` where it names widths, ``replicas=1``."""
    seeds, widths = int(cfg.get("replicas") or 1), pack_widths(cfg)
    out = cfg.copy()
    with open_dict(out):
        out.seed = int(cfg.seed) + k % seeds
        out.replicas = 1
        if widths:
            out.model.width = widths[k // seeds]
            out.pack_widths = None
    return out


def build_replicas(
    cfg: DictConfig,
    instantiate: Callable[..., Any],
    load_weights: Callable[[nn.Module, str], None] | None = None,
    weights: str | None = None,
) -> tuple[ReplicatedDataModule, StackedNet, list[DictConfig]]:
    """Each replica's datamodule and net, built as its separate run builds them (``weights``
    loaded into each with ``load_weights``); stacked."""
    configs = [replica_config(cfg, k) for k in range(num_replicas(cfg))]
    datamodule, stacked = build_pack(configs, instantiate, load_weights, weights)
    seed_run(cfg.seed)
    return datamodule, stacked, configs


def build_pack(
    configs: list[DictConfig],
    instantiate: Callable[..., Any],
    load_weights: Callable[[nn.Module, str], None] | None = None,
    weights: str | None = None,
) -> tuple[ReplicatedDataModule, StackedNet]:
    """The members ``configs`` (seeds, and MLP widths: zero-padded to the widest), each datamodule
    and net built as its separate run builds them, in the same order; stacked."""
    datamodules, nets = [], []
    for member in configs:
        seed_run(member.seed)
        datamodules.append(instantiate(member.data, "data"))
        net = instantiate(member.model, "model")
        if load_weights is not None and weights:
            load_weights(net, weights)
        nets.append(net)
    shape = configs[0].data.get("input_shape")
    # The padding check's inputs: their own generator, so no member's random stream moves.
    example = torch.randn(8, *shape, generator=torch.Generator().manual_seed(0)) if shape else None
    try:
        stacked = stack_nets(nets, example)
    except ValueError as err:
        hint = "sweep model.width=... as separate jobs (replicas=R for the seeds)"
        raise UserError(f"pack_widths: {err}; {hint}") from None
    return ReplicatedDataModule(datamodules), stacked
