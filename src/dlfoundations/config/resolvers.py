"""The OmegaConf resolvers conf/ uses (``${dlf.uid:}``, ...), registered on ``import dlfoundations``
so that any composition of conf/, plain Hydra in a notebook included, resolves."""

import math
import netrc
import os
import secrets
from collections.abc import Callable
from typing import Any

from omegaconf import OmegaConf


def wandb_offline() -> bool:
    """True unless a W&B API key is configured: no key means no network calls and no prompt."""
    if os.environ.get("WANDB_MODE", "").lower() in {"offline", "dryrun", "disabled"}:
        return True
    if os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True


def sweep_group() -> str | None:
    """Name shared by all jobs of one multirun (its sweep dir), None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return os.path.basename(os.path.normpath(HydraConfig.get().sweep.dir))


def local_jobs(jobs_per_gpu: int, cpu_jobs: int | None) -> int:
    """Parallel jobs of the local launcher (see :func:`dlfoundations.devices.local_jobs`)."""
    from dlfoundations.devices import local_jobs as count  # at call time: torch is imported there

    return count(int(jobs_per_gpu), int(cpu_jobs) if cpu_jobs not in (None, "None") else None)


def register_resolvers() -> None:
    """Resolvers used by conf/: ``dlf.uid`` (a short random id, fixed once per config), ``dlf.cwd``,
    ``dlf.numel`` (product of a shape), ``dlf.wandb_offline``, ``dlf.sweep_group``,
    ``dlf.local_jobs`` (parallel jobs of the local launcher)."""
    resolvers: dict[str, tuple[Callable[..., Any], bool]] = {
        "dlf.uid": (lambda: secrets.token_hex(3), True),
        # The launch dir; unlike ${hydra:runtime.cwd} it also resolves before Hydra's job config
        # exists (the sweep dir of a multirun is resolved that early).
        "dlf.cwd": (os.getcwd, True),
        "dlf.numel": (lambda shape: math.prod(shape), False),
        "dlf.wandb_offline": (wandb_offline, True),
        "dlf.sweep_group": (sweep_group, False),
        "dlf.local_jobs": (local_jobs, False),
    }
    for name, (fn, cache) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cache)
