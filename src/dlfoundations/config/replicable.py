"""Whether a run may train replicas (``replicas=R``): decided by what its classes can do, not by names.

A task or callback class says it works on stacked replicas with the class attribute
``supports_replicas = True`` (the task splits its metrics by replica, the callback only reads or
saves the stacked module); Lightning's own callbacks that do so are listed here by class. An
optimizer keeps replicas exact when its update of a parameter depends only on that parameter's
own gradient history: the torch optimizers of :data:`ELEMENTWISE_OPTIMIZERS`, matched by class.
"""

from typing import Any

import torch
from hydra.utils import get_class
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar
from omegaconf import DictConfig

from dlfoundations.errors import UserError
from dlfoundations.models.mlp import MLP

ELEMENTWISE_OPTIMIZERS: tuple[type, ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
)
# Lightning callbacks that only read or save the (stacked) module: its progress, summary, checkpoints.
LIGHTNING_REPLICA_CALLBACKS: tuple[type, ...] = (ModelCheckpoint, ModelSummary, LearningRateMonitor, ProgressBar)


def target_class(node: Any, where: str) -> type | None:
    """The class a config node's ``_target_`` names; None for a node without one."""
    target = node.get("_target_") if node else None
    if not target:
        return None
    try:
        return get_class(str(target))
    except Exception as err:  # not importable, or not a class
        raise UserError(f"{where}._target_={target} is not an importable class ({type(err).__name__})") from None


def supports_replicas(cls: type | None) -> bool:
    return cls is not None and bool(getattr(cls, "supports_replicas", False))


def check_pack_widths(cfg: DictConfig, widths: list[Any]) -> None:
    """``pack_widths``: positive distinct widths; an MLP's activation 0 at 0 (relu, tanh). Other nets
    are checked when built (dlfoundations.replicas.nets.check_padding: each member's outputs equal
    its zero-padded copy's)."""
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths) or len(set(widths)) != len(widths):
        raise UserError(f"pack_widths={widths} must be distinct integers >= 1")
    if "width" not in (cfg.model or {}):
        raise UserError(
            f"pack_widths: model {cfg.model.get('_target_')} has no width to pack; "
            "drop pack_widths (replicas=R for seeds)"
        )
    if target_class(cfg.model, "model") is MLP and cfg.model.get("activation", "relu") not in ("relu", "tanh"):
        raise UserError(
            f"pack_widths: model.activation={cfg.model.activation} is not 0 at 0, so zero-padded units would "
            "not stay silent; use relu or tanh, or sweep model.width=... as separate jobs"
        )


def check_replicable(cfg: DictConfig, trainer_args: dict[str, Any]) -> None:
    """One line for each thing that would couple the replicas or that replicas cannot do."""
    replicas = cfg.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise UserError(f"replicas={replicas!r} must be an integer >= 1")
    widths = list(cfg.get("pack_widths") or [])
    if widths:
        check_pack_widths(cfg, widths)
        if replicas * len(widths) == 1:
            raise UserError(f"pack_widths={widths} with replicas=1 is one model; use model.width={widths[0]}")
        replicas *= len(widths)
    if replicas == 1:
        return
    hint = "; use replicas=1 (and seed=... per job) for this"
    task = target_class(cfg.task, "task")
    if not supports_replicas(task):
        raise UserError(f"replicas={replicas}: the task {cfg.task.get('_target_')} trains no stacked replicas{hint}")
    optimizer = target_class(cfg.get("optimizer"), "optimizer")
    if optimizer not in ELEMENTWISE_OPTIMIZERS:
        raise UserError(
            f"replicas={replicas}: optimizer {cfg.get('optimizer', {}).get('_target_')} is not known to update each "
            f"parameter on its own (replicas stay exact with {', '.join(o.__name__ for o in ELEMENTWISE_OPTIMIZERS)})"
            + hint
        )
    if cfg.task.get("scheduler_monitor"):
        raise UserError(
            f"replicas={replicas}: ReduceLROnPlateau (scheduler=plateau) steps all replicas on one metric{hint}"
        )
    devices, nodes = trainer_args.get("devices", 1), trainer_args.get("num_nodes", 1)
    if (isinstance(devices, int) and devices > 1) or isinstance(devices, list) and len(devices) > 1 or nodes > 1:
        raise UserError(f"replicas={replicas} trains on one device; set trainer.devices=1 (or use replicas=1 for DDP)")
    precision = str(trainer_args.get("precision", "32"))
    if precision.startswith("16"):
        raise UserError(
            f"replicas={replicas}: trainer.precision={precision} scales one loss for all replicas and skips every "
            f"replica's step when one overflows; use trainer.precision=bf16-mixed or 32{hint}"
        )
    for name, node in (cfg.get("callbacks") or {}).items():
        callback = target_class(node, f"callbacks.{name}")
        if callback is None:
            continue
        if not (supports_replicas(callback) or issubclass(callback, LIGHTNING_REPLICA_CALLBACKS)):
            raise UserError(
                f"replicas={replicas}: callbacks.{name} ({node._target_}) acts on one model; "
                f"set callbacks.{name}=null{hint}"
            )
        if issubclass(callback, ModelCheckpoint) and node.get("monitor"):
            raise UserError(
                f"replicas={replicas}: callbacks.{name}.monitor={node.monitor} would pick the best epoch of all "
                f"replicas by one metric; set callbacks.{name}.monitor=null (last checkpoints){hint}"
            )
