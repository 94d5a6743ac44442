"""The spine: compose -> seed -> instantiate data, model, task, trainer -> fit -> test -> results.

``python src/train.py experiment=memorize`` (or the ``dlf-train`` console script) ends up in
:func:`cli`; tests and notebooks call :func:`main` with a composed config.
"""

import io
import json
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import rich.console
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from dlfoundations.checkpoints import AtomicCheckpointIO, check_checkpoint, load_weights, resolve_ckpt_path
from dlfoundations.config import (
    config_tree,
    quiet_known_noise,
    register_resolvers,
    trainer_kwargs,
    unknown_key_hints,
    validate,
)
from dlfoundations.errors import UserError
from dlfoundations.io import atomic_write_json, atomic_write_text
from dlfoundations.models import count_parameters
from dlfoundations.sweeps.devices import sweep_job_device
from dlfoundations.sweeps.requeue import requeued_checkpoint
from dlfoundations.sweeps.slurm_launcher import register_launcher

log = logging.getLogger(__name__)
register_resolvers()
register_launcher()  # hydra/launcher=slurm, also from an editable install
quiet_known_noise()


def instantiate(node: DictConfig, where: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that turns a bad value into a one-line :class:`UserError`."""
    try:
        # _convert_="all": constructors get plain lists/dicts, never OmegaConf containers (which
        # would, e.g., end up pickled in checkpoints).
        return hydra.utils.instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, (ValueError, TypeError)):
            raise UserError(f"{where}: {cause}") from err
        raise


def _instantiate_group(group: DictConfig | None, where: str) -> list[Any]:
    """Instantiate every entry of a dict-of-configs group (callbacks, logger); null entries are off."""
    if not group:
        return []
    return [instantiate(node, f"{where}.{key}") for key, node in group.items() if node and "_target_" in node]


@rank_zero_only
def _save_config(cfg: DictConfig, output_dir: Path) -> None:
    atomic_write_text(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    buffer = io.StringIO()
    rich.console.Console(file=buffer, width=110, color_system=None).print(config_tree(cfg))
    atomic_write_text(output_dir / "config_tree.log", buffer.getvalue())


def _as_floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, torch.Tensor))}


def main(cfg: DictConfig) -> dict[str, Any]:
    """Train and test as ``cfg`` says; write ``results.json`` into the run dir; return the results."""
    validate(cfg)  # wrong types and out-of-range values: one line, before any work is done
    trainer_args = trainer_kwargs(cfg.trainer)  # likewise a GPU asked for where there is none
    pool = cfg.get("device_pool") or {}
    with sweep_job_device(trainer_args, pool.get("jobs_per_gpu", 1), pool.get("cpu_threads", 1)):
        return _train(cfg, trainer_args)


def _train(cfg: DictConfig, trainer_args: dict[str, Any]) -> dict[str, Any]:
    output_dir = Path(cfg.paths.output_dir)
    if cfg.data.get("eval_sets", None) == []:
        trainer_args["limit_val_batches"] = 0  # nothing to evaluate per epoch: no validation loop
    if cfg.get("print_config", True) and rank_zero_only.rank == 0:
        rich.console.Console().print(config_tree(cfg))
    _save_config(cfg, output_dir)
    if torch.cuda.is_available() and cfg.get("matmul_precision"):
        torch.set_float32_matmul_precision(cfg.matmul_precision)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data, "data")
    net = instantiate(cfg.model, "model")
    if cfg.get("weights"):
        load_weights(net, cfg.weights)
    task = instantiate(cfg.task, "task", net=net)
    if cfg.data.get("input_shape"):
        # Lets the model summary show per-layer input/output sizes and FLOPs.
        task.example_input_array = torch.zeros(2, *cfg.data.input_shape)
    callbacks = _instantiate_group(cfg.get("callbacks"), "callbacks")
    loggers = _instantiate_group(cfg.get("logger"), "logger")
    # A job SLURM requeued (time limit, pre-emption) continues from its own last checkpoint.
    ckpt_path = requeued_checkpoint(callbacks) or resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.log_dir, cfg.task_name)
    if ckpt_path:
        check_checkpoint(ckpt_path, task)
    if trainer_args.get("enable_checkpointing") is None and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
        # callbacks.model_checkpoint=null (or callbacks=none) means no checkpoints, not Lightning's
        # default one written after every epoch.
        trainer_args["enable_checkpointing"] = False
    trainer = L.Trainer(**trainer_args, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()])
    hparams = OmegaConf.to_container(cfg, resolve=True)
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)

    start = time.perf_counter()
    if cfg.get("train", True):
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = _as_floats(trainer.callback_metrics)
    fit_seconds = time.perf_counter() - start
    if cfg.get("test", True):
        trainer.test(task, datamodule=datamodule, verbose=cfg.get("print_config", True))
        metrics.update(_as_floats(trainer.callback_metrics))

    name = cfg.get("optimized_metric")
    results = {
        "metrics": metrics,
        "optimized_metric": name,
        "optimized_value": metrics.get(name) if name else None,
        "num_params": count_parameters(net),
        "width": cfg.model.get("width"),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "fit_seconds": round(fit_seconds, 3),
        "seed": cfg.seed,
    }
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "results.json", results)
    if name and name not in metrics:
        log.warning("optimized_metric=%s was not logged; logged metrics: %s", name, sorted(metrics))
    if trainer.is_global_zero:
        summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        log.info("%d epochs in %.1f s: %s", trainer.current_epoch, fit_seconds, summary)
        log.info("run dir: %s", output_dir)
    return results


def record_failure(output_dir: Path, err: BaseException) -> None:
    """``failure.json`` in the run dir: what went wrong, for the sweep summary and for humans."""
    try:
        atomic_write_json(output_dir / "failure.json", {
            "error": f"{type(err).__name__}: {err}".splitlines()[0],
            "traceback": "".join(traceback.format_exception(err)),
        })
    except OSError:
        log.exception("could not write failure.json")


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def cli() -> None:
    """``python src/train.py ...`` / ``dlf-train ...``: Hydra's entry, plus the valid keys when an
    override names a key that does not exist."""
    try:
        hydra_main()
    except SystemExit as exit_:
        if exit_.code == 1:
            for hint in unknown_key_hints([a for a in sys.argv[1:] if not a.startswith("-")]):
                print(hint, file=sys.stderr)
        raise


@hydra.main(version_base="1.3", config_path="pkg://dlfoundations.conf", config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Command-line entry; returns the optimized metric for Hydra sweepers.

    A failing job of a multirun records ``failure.json`` and returns None, so the other jobs and
    the sweep summary still run; a single run prints user mistakes as one line and exits 2.
    """
    results = Path(cfg.paths.output_dir) / "results.json"
    if cfg.get("skip_finished") and results.exists():
        # Re-launching a sweep into its own sweep dir completes it: finished jobs are not rerun.
        log.info("skip_finished: %s exists, not running this job again", results)
        return json.loads(results.read_text()).get("optimized_value")
    try:
        return main(cfg)["optimized_value"]
    except Exception as err:
        record_failure(Path(cfg.paths.output_dir), err)
        if _in_multirun():
            log.error("job failed: %s", f"{type(err).__name__}: {err}".splitlines()[0])
            return None
        if isinstance(err, UserError):
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        raise


if __name__ == "__main__":
    cli()
