"""Config helpers: OmegaConf resolvers, the ``trainer.gpus`` shim, the rich config tree."""

import math
import netrc
import os
import secrets
from collections.abc import Sequence
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from dlfoundations.errors import UserError

CPU_HINT = "run on CPU with trainer=cpu (or leave trainer.gpus unset)"


def _wandb_offline() -> bool:
    """True unless a W&B API key is configured: no key means no network calls and no prompt."""
    if os.environ.get("WANDB_MODE", "").lower() in {"offline", "dryrun", "disabled"}:
        return True
    if os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True


def _sweep_group() -> str | None:
    """Name shared by all jobs of one multirun (its sweep dir), None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return os.path.basename(os.path.normpath(HydraConfig.get().sweep.dir))


def register_resolvers() -> None:
    """Resolvers used by conf/: ``dlf.uid`` (a short random id, fixed once per config),
    ``dlf.numel`` (product of a shape), ``dlf.wandb_offline``, ``dlf.sweep_group``."""
    resolvers = {
        "dlf.uid": (lambda: secrets.token_hex(3), True),
        "dlf.numel": (lambda shape: math.prod(shape), False),
        "dlf.wandb_offline": (_wandb_offline, True),
        "dlf.sweep_group": (_sweep_group, False),
    }
    for name, (fn, cache) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cache)


def trainer_kwargs(trainer_cfg: DictConfig) -> dict[str, Any]:
    """Trainer arguments from ``cfg.trainer``, mapping Lightning 1.x ``gpus=N`` to
    ``accelerator="gpu", devices=N`` and failing with one clear line when CUDA is missing."""
    kwargs = OmegaConf.to_container(trainer_cfg, resolve=True)
    assert isinstance(kwargs, dict)
    gpus = kwargs.pop("gpus", None)
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus is not None:
        wanted = len(gpus) if isinstance(gpus, Sequence) and not isinstance(gpus, str) else int(gpus)
        if wanted == 0:
            kwargs.update(accelerator="cpu", devices=1)
            return kwargs
        if wanted < 0:
            wanted = available or 1
        if wanted > available:
            raise UserError(
                f"trainer.gpus={gpus} asks for {wanted} GPU(s) but torch sees {available} CUDA "
                f"device(s) here; {CPU_HINT}."
            )
        kwargs.update(accelerator="gpu", devices=gpus)
    elif str(kwargs.get("accelerator")) in {"gpu", "cuda"} and available == 0:
        raise UserError(f"trainer.accelerator={kwargs['accelerator']} but torch sees no CUDA device here; {CPU_HINT}.")
    return kwargs


CONFIG_ORDER = ("experiment", "seed", "data", "model", "task", "optimizer", "scheduler", "trainer",
                "callbacks", "logger", "paths")


def config_tree(cfg: DictConfig) -> "rich.tree.Tree":  # noqa: F821
    """The resolved config as a rich tree, the main groups first."""
    import rich.syntax
    import rich.tree

    tree = rich.tree.Tree("config", guide_style="dim")
    keys = [k for k in CONFIG_ORDER if k in cfg] + [k for k in cfg if k not in CONFIG_ORDER]
    for key in keys:
        branch = tree.add(str(key), guide_style="dim")
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else repr(value)
        branch.add(rich.syntax.Syntax(text, "yaml", theme="ansi_dark"))
    return tree
