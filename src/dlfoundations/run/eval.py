"""Evaluate a checkpoint and predict classes: the spine of ``python src/eval.py ckpt_path=<run>``.

The model and data are rebuilt from the config of the run that wrote the checkpoint (its
``config_unresolved.yaml``, written by train.py, or Hydra's ``.hydra/config.yaml``). Each
command-line override replaces that key (or, for a group such as ``data=mnist_bundled``, that whole
node) with the value conf/eval.yaml composes for it; then the config resolves, so interpolations of
the run (``task.test_sets: ${data.test_sets}``, ``model.in_features`` from the data shape) follow
the overrides as they would in training. ``paths``, ``callbacks``, ``logger`` and the keys of
conf/eval.yaml are eval's own. The results go into a new run dir (``logs/eval/runs/...``).
"""

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import hydra
import rich.console
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dlfoundations.atomic import atomic_write_json
from dlfoundations.config.checks import config_tree, validate
from dlfoundations.config.cli import run_entry
from dlfoundations.config.objects import instantiate, instantiate_group
from dlfoundations.config.overrides import is_delete, is_hydra_key, override_key
from dlfoundations.config.schemas import root_keys
from dlfoundations.data.base import TEST_SETS
from dlfoundations.data.loader import TensorBatchLoader
from dlfoundations.errors import RunFailed, UserError
from dlfoundations.record.run_dir import save_config
from dlfoundations.replicas.build import num_replicas
from dlfoundations.replicas.nets import StackedNet
from dlfoundations.run.build import build_run
from dlfoundations.run.checkpoints import check_checkpoint
from dlfoundations.run.predict import load_inputs, write_predictions
from dlfoundations.run.trainer import build_trainer, trainer_kwargs
from dlfoundations.tasks import ClassificationModule
from dlfoundations.tasks.engine import DIVERGED

log = logging.getLogger(__name__)
# Taken from conf/eval.yaml, not from the evaluated run: where eval writes, what it logs, what it does.
EVAL_OWNED = root_keys(eval="own")
# Training-only switches: eval always tests the checkpoint's weights.
TRAIN_ONLY = root_keys(eval="train_only")
_ABSENT = object()


def locate(ckpt_path: str) -> tuple[Path, Path]:
    """(run dir, checkpoint) for a run dir (its ``checkpoints/last.ckpt``) or a checkpoint file
    (its run dir is the folder above ``checkpoints/``)."""
    path = Path(ckpt_path).expanduser()
    if path.is_dir():
        ckpt = path / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            found = sorted(p.name for p in path.glob("checkpoints/*.ckpt"))
            raise UserError(
                f"ckpt_path={ckpt_path} has no checkpoints/last.ckpt"
                + (f"; pass one of its checkpoints {found}" if found else " (that run wrote no checkpoints)")
            )
        return path.resolve(), ckpt.resolve()
    if path.is_file():
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return run_dir.resolve(), path.resolve()
    raise UserError(f"ckpt_path={ckpt_path} does not exist; pass a run dir or a checkpoint in <run dir>/checkpoints/")


def run_config(run_dir: Path) -> dict[str, Any]:
    for name in ("config_unresolved.yaml", ".hydra/config.yaml"):
        if (run_dir / name).is_file():
            try:
                tree = OmegaConf.to_container(OmegaConf.load(run_dir / name), resolve=False)
            except Exception as err:  # not YAML, or YAML OmegaConf cannot hold
                raise UserError(
                    f"{run_dir / name} is not a readable config ({type(err).__name__}: {str(err).splitlines()[0]}); "
                    "restore it from the run's .hydra/config.yaml or evaluate another run"
                ) from err
            if not isinstance(tree, dict) or not isinstance(tree.get("model"), dict):
                raise UserError(
                    f"{run_dir / name} is not a run config (no model node); restore it from the run's "
                    ".hydra/config.yaml or evaluate another run"
                )
            return cast(dict[str, Any], tree)
    raise UserError(
        f"{run_dir} has no config_unresolved.yaml (nor .hydra/config.yaml), so its model and data "
        "cannot be rebuilt; evaluate a checkpoint inside the run dir that wrote it"
    )


def _get(tree: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _ABSENT
        tree = tree[part]
    return tree


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        if not isinstance(tree.get(part), dict):
            tree[part] = {}
        tree = tree[part]
    if value is _ABSENT:
        tree.pop(leaf, None)
    else:
        tree[leaf] = value


def eval_config(cfg: DictConfig, overrides: Sequence[str]) -> tuple[DictConfig, Path, Path, list[str]]:
    """The evaluated run's config with eval's own keys and the command-line ``overrides`` applied;
    also the run dir, the checkpoint, and the overrides that changed the run's config."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise UserError("ckpt_path is required: python src/eval.py ckpt_path=<run dir or checkpoint>")
    run_dir, ckpt = locate(str(cfg.ckpt_path))
    run = run_config(run_dir)
    composed = cast(
        dict[str, Any], OmegaConf.to_container(cfg, resolve=False)
    )  # interpolations kept: they resolve in the merge
    merged = {k: v for k, v in run.items() if k not in EVAL_OWNED + TRAIN_ONLY}
    merged.update({k: composed[k] for k in EVAL_OWNED if k in composed})
    applied = []
    for override in overrides:
        key = override_key(override)
        top = key.split(".")[0]
        if is_hydra_key(key) or top in EVAL_OWNED:
            continue
        if top in TRAIN_ONLY:
            raise UserError(f"{override}: eval always tests the checkpoint's weights; drop this override")
        value = _ABSENT if is_delete(override) else _get(composed, key)
        if value is _ABSENT and not is_delete(override):
            raise UserError(
                f"{override}: eval rebuilds the run from its own config, where this group "
                "changes keys of other groups; override those keys instead (e.g. data.test_sets=[val])"
            )
        _set(merged, key, value)
        applied.append(override)
    return OmegaConf.create(merged), run_dir, ckpt, applied


def _input_shape(cfg: DictConfig) -> list[int] | None:
    """The resolved ``data.input_shape`` of a config, None where it has none or cannot resolve."""
    try:
        shape = OmegaConf.select(cfg, "data.input_shape", default=None)
        return [int(n) for n in shape] if shape is not None else None
    except Exception:
        return None


def check_run_checkpoint(ckpt: str, task: Any, run_dir: Path, run_cfg: DictConfig, applied: list[str]) -> dict:
    """:func:`check_checkpoint`, naming the data where data of another input shape is why the
    checkpoint's weights do not fit the model rebuilt for it (the model is the run's; a model that
    takes any input size, e.g. resnet18 at another resolution, is not refused)."""
    try:
        return check_checkpoint(ckpt, task)
    except UserError as err:
        trained_on, given = _input_shape(OmegaConf.create(run_config(run_dir))), _input_shape(run_cfg)
        if trained_on is None or given is None or trained_on == given:
            raise
        data = next((o for o in applied if override_key(o) == "data"), "these data overrides")
        raise UserError(
            f"{data} gives inputs of shape {given}, and this run's model was trained on inputs of shape "
            f"{trained_on}; evaluate it on data of that shape (e.g. data.test_sets=[...] of its own data)"
        ) from err


def main(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Test ``cfg.ckpt_path`` on its run's data (with ``overrides``), predict as ``cfg.predict``
    says, and write ``eval_results.json`` into the new run dir; return the results."""
    run_cfg, run_dir, ckpt, applied = eval_config(cfg, overrides)
    validate(run_cfg)
    trainer_args = trainer_kwargs(run_cfg.trainer)
    predict = run_cfg.get("predict") or {}
    split, inputs = predict.get("split"), predict.get("input")
    if split is not None and split not in TEST_SETS:
        raise UserError(f"predict.split={split} is not a split; use one of {list(TEST_SETS)}")
    output_dir = Path(run_cfg.paths.output_dir)
    save_config(run_cfg, output_dir)
    if torch.cuda.is_available() and run_cfg.speed.get("matmul_precision"):
        torch.set_float32_matmul_precision(run_cfg.speed.matmul_precision)

    replicas, replica = num_replicas(run_cfg), run_cfg.get("replica")
    test_ckpt: str | None = str(ckpt)
    datamodule: Any
    net: nn.Module
    if replica is not None and replicas == 1 and replica != 0:
        raise UserError(f"replica={replica}: this run trained one model (replicas=1); drop replica=")
    run = build_run(run_cfg, trainer_args)  # as in training: same seeds, same data, same noise
    datamodule, net, task = run.datamodule, run.net, run.task
    checkpoint = check_run_checkpoint(str(ckpt), task, run_dir, run_cfg, applied)
    if replicas > 1:  # a replicated run: all replicas stacked, or (replica=k) replica k alone
        stacked, replica_cfgs = cast(StackedNet, net), run.replica_cfgs
        if replica is not None:
            if isinstance(replica, bool) or not isinstance(replica, int) or not 0 <= replica < replicas:
                raise UserError(f"replica={replica} does not exist; this run trained replicas 0..{replicas - 1}")
            if (why := checkpoint.get(DIVERGED, {}).get(str(replica))) is not None:
                raise UserError(f"replica={replica} failed in training and has no trained weights: {why}")
            task.load_state_dict(checkpoint["state_dict"])
            net, datamodule = stacked.replica(replica), datamodule.members[replica]
            run_cfg = replica_cfgs[replica]
            task, test_ckpt = instantiate(run_cfg.task, "task", net=net), None
        elif split or inputs:
            raise UserError(
                f"this run trained {replicas} replicas; predict for one of them with replica=<0..{replicas - 1}>"
            )
    if (split or inputs) and not isinstance(task, ClassificationModule):
        raise UserError(f"predict needs a classification task; this run's task is {type(task).__name__}")
    x_input = None
    if inputs:
        datamodule.setup("predict")
        x_input = load_inputs(str(inputs), datamodule.input_shape, datamodule.splits.x_train.dtype)

    callbacks = instantiate_group(run_cfg.get("callbacks"), "callbacks")
    loggers = instantiate_group(run_cfg.get("logger"), "logger")
    trainer = build_trainer(
        {**trainer_args, "enable_checkpointing": False}, callbacks=callbacks, logger=loggers or False
    )
    if (split or inputs) and trainer.world_size > 1:
        raise UserError("predict runs on one device; set trainer.devices=1")
    # The config tree once everything is built (a mistake found while building is the last line the
    # user reads). Lightning sets rank on the function (documented); its stubs do not declare it.
    if run_cfg.get("print_config", True) and rank_zero_only.rank == 0:  # type: ignore[attr-defined]
        rich.console.Console().print(config_tree(run_cfg))
    trainer.test(
        task, datamodule=datamodule, ckpt_path=test_ckpt, weights_only=True, verbose=run_cfg.get("print_config", True)
    )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    written = {}
    if split:
        datamodule.test_sets = [split]
        loader = datamodule.test_dataloader()
        loader = loader[0] if isinstance(loader, list) else loader
        n = len(loader.tensors[0])
        if n == 0:
            raise UserError(f"predict.split={split} is empty in this run's data (e.g. data.val_size=0)")
        written[split] = write_predictions(trainer, net, loader, n, output_dir / f"predictions_{split}.csv").name
    if x_input is not None:
        loader = TensorBatchLoader((x_input,), batch_size=run_cfg.data.get("eval_batch_size", 1000))
        written["input"] = write_predictions(
            trainer, net, loader, len(x_input), output_dir / "predictions_input.csv"
        ).name

    results = {
        "metrics": metrics,
        "run_dir": str(run_dir),
        # Lightning's counters at save time: epoch is the index of the epoch being trained.
        "checkpoint": {
            "path": str(ckpt),
            "epoch_index": checkpoint.get("epoch"),  # 0-based: a checkpoint of epoch k's end has k
            "global_step": checkpoint.get("global_step"),
        },
        "overrides": applied,
        "predictions": written,
        "predict_input": str(Path(inputs).expanduser().resolve()) if inputs else None,
        "seed": run_cfg.seed,
        # A replicated run: which replica (its seed above), or None for all (metrics replica_<k>/...).
        "replica": replica if replicas > 1 else None,
    }
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "eval_results.json", results)
        summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        log.info("%s: %s", ckpt, summary)
        log.info("run dir: %s", output_dir)
    return results


class NoSweepSummary(Callback):
    """Stands in for the training sweep summary in an eval multirun: each job has its own
    ``eval_results.json`` and no ``results.json`` to summarize. Ignores the summary's options."""

    def __init__(self, **options: Any) -> None:
        super().__init__()


def cli() -> None:
    """``python src/eval.py ckpt_path=...`` / ``dlf-eval ckpt_path=...``."""
    run_entry(hydra_main)


@hydra.main(version_base="1.3", config_path="pkg://dlfoundations.conf", config_name="eval")
def hydra_main(cfg: DictConfig) -> None:
    """Command-line entry: user mistakes are one line and exit code 2."""
    try:
        main(cfg, HydraConfig.get().overrides.task)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # the run's own: its traceback, never a one-line command-line error
        raise RunFailed(f"evaluation failed: {type(err).__name__}: {err}") from err


if __name__ == "__main__":
    cli()
