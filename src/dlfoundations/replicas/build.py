"""Build R replicas of a run (``replicas=R``), refuse what would couple them, write their results.

Replica ``k`` is the run with ``seed + k``: :func:`replica_config` is its config, and its datamodule
and net are built from it exactly as a separate run builds them (seeded the same way, in the same
order), so it starts from the separate run's initialization and sees its data.
"""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from dlfoundations.atomic import atomic_write_json, atomic_write_text
from dlfoundations.errors import UserError
from dlfoundations.replicas.data import ReplicatedDataModule
from dlfoundations.replicas.nets import StackedNet, stack_nets
from dlfoundations.replicas.training import replica_prefix, split_by_replica
from dlfoundations.seeding import seed_run
from dlfoundations.sweeps.jobs import REPLICAS_FILE

log = logging.getLogger(__name__)

# Optimizers whose update of a parameter depends only on that parameter's own gradient history:
# stacked replicas take exactly their separate runs' steps.
ELEMENTWISE_OPTIMIZERS = tuple(
    f"torch.optim.{name}" for name in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam")
)
# Callbacks that work on replicated runs (the per-replica ones split the metrics by replica).
REPLICA_CALLBACKS = (
    "lightning.pytorch.callbacks.ModelCheckpoint",
    "lightning.pytorch.callbacks.RichModelSummary",
    "lightning.pytorch.callbacks.ModelSummary",
    "lightning.pytorch.callbacks.LearningRateMonitor",
    "lightning.pytorch.callbacks.TQDMProgressBar",
    "lightning.pytorch.callbacks.RichProgressBar",
    "dlfoundations.callbacks.StepProgressBar",
    "dlfoundations.callbacks.RNGState",
    "dlfoundations.callbacks.EvalSchedule",
    "dlfoundations.callbacks.TrainingCurves",
)


def num_replicas(cfg: DictConfig) -> int:
    return int(cfg.get("replicas") or 1)


def check_replicable(cfg: DictConfig, trainer_args: dict[str, Any]) -> None:
    """One line for each thing that would couple the replicas or that replicas cannot do."""
    replicas = cfg.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise UserError(f"replicas={replicas!r} must be an integer >= 1")
    if replicas == 1:
        return
    hint = "; use replicas=1 (and seed=... per job) for this"
    task = str(cfg.task.get("_target_", ""))
    if not task.endswith("ClassificationModule"):
        raise UserError(f"replicas={replicas}: the task {task} trains no stacked replicas{hint}")
    optimizer = str(cfg.get("optimizer", {}).get("_target_", ""))
    if optimizer not in ELEMENTWISE_OPTIMIZERS:
        raise UserError(
            f"replicas={replicas}: optimizer {optimizer} is not known to update each parameter on its own "
            f"(replicas stay exact with {', '.join(o.rsplit('.', 1)[1] for o in ELEMENTWISE_OPTIMIZERS)}){hint}"
        )
    if cfg.task.get("scheduler_monitor"):
        raise UserError(
            f"replicas={replicas}: ReduceLROnPlateau (scheduler=plateau) steps all replicas on one metric{hint}"
        )
    devices, nodes = trainer_args.get("devices", 1), trainer_args.get("num_nodes", 1)
    if (isinstance(devices, int) and devices > 1) or isinstance(devices, list) and len(devices) > 1 or nodes > 1:
        raise UserError(f"replicas={replicas} trains on one device; set trainer.devices=1 (or use replicas=1 for DDP)")
    for name, node in (cfg.get("callbacks") or {}).items():
        target = str(node.get("_target_", "")) if node else ""
        if target and target not in REPLICA_CALLBACKS:
            raise UserError(
                f"replicas={replicas}: callbacks.{name} ({target}) acts on one model; set callbacks.{name}=null{hint}"
            )
        if target.endswith("ModelCheckpoint") and node.get("monitor"):
            raise UserError(
                f"replicas={replicas}: callbacks.{name}.monitor={node.monitor} would pick the best epoch of all "
                f"replicas by one metric; set callbacks.{name}.monitor=null (last checkpoints){hint}"
            )


def replica_config(cfg: DictConfig, k: int) -> DictConfig:
    """The config of replica ``k``: the run's config with ``seed + k`` and ``replicas=1``."""
    out = cfg.copy()
    with open_dict(out):
        out.seed = int(cfg.seed) + k
        out.replicas = 1
    return out


def build_replicas(
    cfg: DictConfig, instantiate: Callable[..., Any], load_weights: Callable[[nn.Module, str], None] | None = None
) -> tuple[ReplicatedDataModule, StackedNet, list[DictConfig]]:
    """Each replica's datamodule and net, built as its separate run builds them; stacked."""
    configs = [replica_config(cfg, k) for k in range(num_replicas(cfg))]
    datamodules, nets = [], []
    for replica_cfg in configs:
        seed_run(replica_cfg.seed)
        datamodules.append(instantiate(replica_cfg.data, "data"))
        net = instantiate(replica_cfg.model, "model")
        if load_weights is not None and cfg.get("weights") and not cfg.get("ckpt_path"):
            load_weights(net, cfg.weights)
        nets.append(net)
    seed_run(cfg.seed)
    return ReplicatedDataModule(datamodules), stack_nets(nets), configs


def replica_overrides(overrides: list[str] | None, seed: int) -> list[str]:
    """A replica's overrides: the job's, with ``seed=<its seed>`` (what its separate run is)."""
    kept = [o for o in overrides or [] if o.split("=", 1)[0].lstrip("+~") != "seed"]
    return sorted([*kept, f"seed={seed}"])


def write_replica_results(
    output_dir: Path, results: dict[str, Any], configs: list[DictConfig], identity: list[str] | None
) -> dict[str, Any]:
    """``replica_<k>/results.json`` (a single run's schema: its own seed and metrics), its
    ``config.yaml`` and ``.hydra/overrides.yaml`` (the separate run it equals, so sweep summaries
    read it as one more seed), then ``replicas.json`` in the run dir, written last. Returns that."""
    per_replica = split_by_replica(results["metrics"])
    name = results.get("optimized_metric")
    entries = []
    for k, replica_cfg in enumerate(configs):
        folder = output_dir / replica_prefix(k).rstrip("/")
        metrics = per_replica.get(k, {})
        overrides = replica_overrides(identity, int(replica_cfg.seed))
        atomic_write_text(folder / ".hydra" / "overrides.yaml", yaml.safe_dump(overrides))
        atomic_write_text(folder / "config.yaml", OmegaConf.to_yaml(replica_cfg, resolve=True))
        replica_results = {
            **results,
            "metrics": metrics,
            "optimized_value": metrics.get(name) if name else None,
            "seed": int(replica_cfg.seed),
            "overrides": overrides,
            "nonfinite_metrics": [
                m.removeprefix(replica_prefix(k))
                for m in results["nonfinite_metrics"]
                if m.startswith(replica_prefix(k))
            ],
            # fit_seconds (and epochs, global_step) are those of the job that trained all replicas.
            "replica": {"index": k, "of": len(configs)},
        }
        atomic_write_json(folder / "results.json", replica_results)
        entries.append(
            {"dir": folder.name, "seed": int(replica_cfg.seed), "optimized_value": replica_results["optimized_value"]}
        )
    values = [e["optimized_value"] for e in entries if e["optimized_value"] is not None]
    summary = {
        "replicas": entries,
        "overrides": identity,
        "optimized_metric": name,
        # What a Hydra sweeper (Optuna) gets for the job: the mean over its replicas.
        "optimized_value": sum(values) / len(values) if len(values) == len(entries) and values else None,
        "fit_seconds": results["fit_seconds"],
    }
    atomic_write_json(output_dir / REPLICAS_FILE, summary)
    return summary
