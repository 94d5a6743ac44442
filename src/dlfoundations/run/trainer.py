"""The Trainer of a run, built from ``cfg.trainer`` (``_target_: dlfoundations.run.trainer.Trainer``,
a ``lightning.Trainer`` that also takes the ``gpus`` alias).

``trainer.gpus=N`` is an alias (Lightning 1.x style) for ``accelerator=gpu devices=N``; asking for
a GPU where torch sees none stops in one line.
"""

import contextlib
from collections.abc import Sequence
from typing import Any, cast

import hydra
import lightning as L
import torch
from hydra.errors import InstantiationException
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.profilers import PassThroughProfiler
from omegaconf import DictConfig, OmegaConf

from dlfoundations.errors import UserError

TARGET = "dlfoundations.run.trainer.Trainer"
# Where a run dir written by an earlier version names the trainer: evaluated and resumed as TARGET.
MOVED_TARGETS = {"dlfoundations.trainer.Trainer": TARGET}
FLOAT64 = "64"  # trainer.precision=64-true (or 64): the whole run in float64
CPU_HINT = "run on CPU with trainer=cpu (or leave trainer.gpus unset)"


def trainer_kwargs(trainer_cfg: DictConfig) -> dict[str, Any]:
    """The resolved ``cfg.trainer`` as a dict, mapping ``gpus=N`` to ``accelerator="gpu",
    devices=N`` and failing with one clear line when CUDA is missing."""
    kwargs = cast(dict[str, Any], OmegaConf.to_container(trainer_cfg, resolve=True))
    kwargs.setdefault("_target_", TARGET)  # a run config written before the trainer had one
    kwargs["_target_"] = MOVED_TARGETS.get(kwargs["_target_"], kwargs["_target_"])
    return map_gpus(kwargs.pop("gpus", None), kwargs)


def map_gpus(gpus: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` (Trainer arguments) with the ``gpus`` alias mapped to accelerator and devices;
    a GPU asked for where torch sees none is one :class:`UserError`."""
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus is not None:
        if isinstance(gpus, Sequence) and not isinstance(gpus, str):
            wanted = len(gpus)
        elif isinstance(gpus, int) and not isinstance(gpus, bool):
            wanted = gpus
        else:
            raise UserError(f"trainer.gpus={gpus!r} must be a number of GPUs (-1: all) or a list of GPU ids")
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


class Trainer(L.Trainer):
    """The ``_target_`` of ``conf/trainer``: a ``lightning.Trainer`` that also takes the ``gpus``
    alias, so ``hydra.utils.instantiate(cfg.trainer)`` works on a composed config."""

    def __init__(self, *args: Any, gpus: int | list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **map_gpus(gpus, kwargs))


def match_precision(net: torch.nn.Module, trainer_args: dict[str, Any]) -> torch.nn.Module:
    """``net`` in float64 under ``trainer.precision=64-true``, before any weights are loaded into
    it: Lightning restores a checkpoint into the module before its precision plugin converts it,
    and a float32 module rounds the saved float64 weights (a resumed run off by 1e-8)."""
    if str(trainer_args.get("precision")).startswith(FLOAT64):
        net.double()
    return net


class NullProfiler(PassThroughProfiler):
    """Lightning's default profiler (``profiler=None``, a PassThroughProfiler), for less: Lightning
    enters ``profiler.profile(name)`` around each hook it dispatches to the module and to each
    callback, several times per optimizer step, and the base class builds a generator-based context
    manager each time; this one hands out one shared no-op context."""

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:  # type: ignore[override]
        return self._nothing


def build_trainer(trainer_args: dict[str, Any], **objects: Any) -> L.Trainer:
    """Instantiate ``trainer_args`` (from :func:`trainer_kwargs`) with ``objects`` the run makes
    itself (callbacks, logger, plugins); a value Lightning rejects is one :class:`UserError`.
    Without ``trainer.profiler`` the Trainer gets a :class:`NullProfiler`."""
    if trainer_args.get("profiler") is None:
        objects.setdefault("profiler", NullProfiler())
    if trainer_args.get("enable_progress_bar") is False and any(
        isinstance(c, ProgressBar) for c in objects.get("callbacks") or []
    ):
        # An experiment turns Lightning's default bar off (trainer.enable_progress_bar=false); a
        # progress-bar callback chosen on top of it (callbacks=default) is the more specific wish.
        trainer_args = {**trainer_args, "enable_progress_bar": True}
    try:
        return hydra.utils.instantiate(trainer_args, _convert_="all", **objects)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, (ValueError, TypeError, MisconfigurationException)):
            raise UserError(f"trainer: {str(cause).strip().splitlines()[0]}") from err
        raise
