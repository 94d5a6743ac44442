"""Build a run from its config: the one sequence train.py and eval.py share.

Seeds first (one derivation, dlfoundations.seeding), then the datamodule, the net (in the run's
precision, its weights loaded where asked) and the task around it. ``replicas=R`` builds each
replica exactly as its separate run (seed + k), then stacks them.
"""

import dataclasses
from typing import Any

from omegaconf import DictConfig
from torch import nn

from dlfoundations.config.objects import instantiate
from dlfoundations.replicas.build import build_replicas, num_replicas
from dlfoundations.run.checkpoints import load_weights
from dlfoundations.run.trainer import match_precision
from dlfoundations.seeding import seed_run


@dataclasses.dataclass
class Run:
    """What a run trains or tests: its datamodule, net and task; for ``replicas=R`` the stacked
    ones and each replica's config (``replica_cfgs``; [] for one model)."""

    datamodule: Any
    net: nn.Module
    task: Any
    replicas: int
    replica_cfgs: list[DictConfig]


def build_run(cfg: DictConfig, trainer_args: dict[str, Any], weights: str | None = None) -> Run:
    """The run ``cfg`` describes, in the precision of ``trainer_args``; ``weights`` (a state dict or
    checkpoint file) loaded into the net (into every replica) before the task wraps it."""
    replicas = num_replicas(cfg)
    replica_cfgs: list[DictConfig] = []
    net: nn.Module
    if replicas > 1:  # seeds seed..seed+R-1, each built as its separate run, trained stacked

        def load(net: nn.Module, path: str) -> None:
            load_weights(match_precision(net, trainer_args), path)

        datamodule, net, replica_cfgs = build_replicas(cfg, instantiate, load, weights)
        match_precision(net, trainer_args)
    else:
        seed_run(cfg.seed)
        datamodule = instantiate(cfg.data, "data")
        net = match_precision(instantiate(cfg.model, "model"), trainer_args)
        if weights:
            load_weights(net, weights)
    # The task's replicas (``${replicas}``) counts seeds; a pack of widths trains widths x seeds.
    task = instantiate(cfg.task, "task", net=net, **({"replicas": replicas} if replicas > 1 else {}))
    return Run(datamodule, net, task, replicas, replica_cfgs)
