"""The spine: compose -> seed -> instantiate data, model, task, trainer -> fit -> test -> results.

``python src/train.py experiment=memorize`` (or the ``dlf-train`` console script) ends up in
:func:`cli`; tests and notebooks call :func:`main` with a composed config (the report a single
run of an experiment ends with is Hydra's job-end callback, dlfoundations.launch.callback.RunReport).
"""

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, cast

import hydra
import rich.console
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from dlfoundations.config.checks import config_tree, validate
from dlfoundations.config.cli import quiet_known_noise, run_entry
from dlfoundations.config.objects import instantiate_group
from dlfoundations.config.preflight import preflight
from dlfoundations.config.replicable import check_replicable
from dlfoundations.config.schemas import register_schemas
from dlfoundations.devices import sweep_job_device
from dlfoundations.errors import RunFailed, UserError
from dlfoundations.models import count_parameters
from dlfoundations.record.jobs import (
    current_job_identity,
    finished_results,
    is_launching_process,
    last_checkpoint,
    record_job,
    recorded_identity,
    set_aside_previous,
)
from dlfoundations.record.run_dir import record_failure, save_config, write_replica_results, write_results
from dlfoundations.replicas.build import pack_widths
from dlfoundations.replicas.nets import StackedNet
from dlfoundations.replicas.training import replica_prefix
from dlfoundations.run.build import build_run
from dlfoundations.run.checkpoints import (
    AtomicCheckpointIO,
    check_checkpoint,
    check_weight_sources,
    resolve_ckpt_path,
)
from dlfoundations.run.interrupt import print_resume_hint
from dlfoundations.run.requeue import requeued_checkpoint, slurm_restarts
from dlfoundations.run.trainer import FLOAT64, build_trainer, trainer_kwargs
from dlfoundations.tasks.base import FIT_COUNTS, fit_counts

log = logging.getLogger(__name__)
register_schemas()  # also where a launcher's worker composes a job without importing dlfoundations.conf first
quiet_known_noise()


def _as_floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float, torch.Tensor)) and not k.startswith(FIT_COUNTS)
    }


def main(cfg: DictConfig) -> dict[str, Any]:
    """Train and test as ``cfg`` says; write ``results.json`` into the run dir; return the results."""
    validate(cfg)  # values left unset, and what no schema or constructor checks: one line each
    trainer_args = trainer_kwargs(cfg.trainer)  # a GPU asked for where there is none: one line
    check_replicable(cfg, trainer_args)  # replicas=R: nothing that would couple the replicas
    preflight(cfg)  # paths, options, and whether the model fits the data and the task
    pool = cfg.get("device_pool") or {}
    with sweep_job_device(trainer_args, pool.get("jobs_per_gpu", 1), pool.get("cpu_threads", 1)):
        try:
            return _train(cfg, trainer_args)
        finally:
            # A DDP process group left alive at interpreter exit can abort a rank in gloo's
            # teardown ("terminate called without an active exception", seen in CI); the next
            # run in this process (a sweep job) starts its own group.
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()


def _train(cfg: DictConfig, trainer_args: dict[str, Any]) -> dict[str, Any]:
    output_dir = Path(cfg.paths.output_dir)
    if cfg.data.get("eval_sets", None) == []:
        trainer_args["limit_val_batches"] = 0  # nothing to evaluate per epoch: no validation loop
    save_config(cfg, output_dir)
    if torch.cuda.is_available() and cfg.speed.get("matmul_precision"):
        torch.set_float32_matmul_precision(cfg.speed.matmul_precision)

    fit, test, weights = cfg.get("train", True), cfg.get("test", True), cfg.get("weights")
    check_weight_sources(fit, test, cfg.get("ckpt_path"), weights)
    if weights and cfg.get("ckpt_path"):
        # Resuming (e.g. a fine-tuning run): the checkpoint restores the trained weights.
        log.info("weights=%s not loaded: ckpt_path=%s restores the weights", weights, cfg.ckpt_path)
    run = build_run(cfg, trainer_args, weights if not cfg.get("ckpt_path") else None)
    datamodule, net, task, replicas, replica_cfgs = run.datamodule, run.net, run.task, run.replicas, run.replica_cfgs
    packed = bool(pack_widths(cfg))  # members of different widths: each has its own parameter count
    stacked_net = cast(StackedNet, net)
    if cfg.data.get("input_shape"):
        # Lets the model summary show per-layer input/output sizes and FLOPs.
        shape = (replicas, 2) if replicas > 1 else (2,)
        task.example_input_array = torch.zeros(
            *shape,
            *cfg.data.input_shape,
            dtype=torch.float64 if str(trainer_args.get("precision")).startswith(FLOAT64) else None,
        )
    callbacks = instantiate_group(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_group(cfg.get("logger"), "logger")
    # A job SLURM requeued (time limit, pre-emption) continues from its own last checkpoint.
    ckpt_path = requeued_checkpoint(callbacks) or resolve_ckpt_path(cfg)
    if ckpt_path:
        check_checkpoint(ckpt_path, task)
    if trainer_args.get("enable_checkpointing") is None and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
        # callbacks.model_checkpoint=null (or callbacks=none) means no checkpoints, not Lightning's
        # default one written after every epoch.
        trainer_args["enable_checkpointing"] = False
    trainer = build_trainer(trainer_args, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()])
    # The config tree once everything is built: a mistake found while building is the last line
    # the user reads, not one under a screen of config. Lightning sets rank on the function
    # (documented); its stubs do not declare it.
    if cfg.get("print_config", True) and rank_zero_only.rank == 0:  # type: ignore[attr-defined]
        rich.console.Console().print(config_tree(cfg))
    hparams = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)

    start = time.perf_counter()
    try:
        if fit:
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics = _as_floats(trainer.callback_metrics)
        fit_seconds = time.perf_counter() - start
        if test:
            # Without fit, the weights to test are the checkpoint's (weights=... are already in the net).
            trainer.test(
                task,
                datamodule=datamodule,
                verbose=cfg.get("print_config", True),
                ckpt_path=None if fit else ckpt_path,
                weights_only=True,
            )
            metrics.update(_as_floats(trainer.callback_metrics))
    except SystemExit:
        print_resume_hint(trainer, output_dir)  # Ctrl-C: Lightning shut down, then exits with status 1
        raise

    name = cfg.get("optimized_metric")
    epochs, global_step = fit_counts(trainer)
    failed = task.failed_replicas()  # replicas that diverged while the others trained on
    frozen = tuple(replica_prefix(k) for k in failed)
    results = {
        "metrics": metrics,
        "optimized_metric": name,
        "optimized_value": metrics.get(name) if name else None,
        "num_params": count_parameters(net) // replicas if not packed else None,  # of one model (members: their own)
        "width": cfg.model.get("width"),
        "epochs": epochs,
        "global_step": global_step,
        "fit_seconds": round(fit_seconds, 3),  # of this run (a resumed one: the epochs after its checkpoint)
        "checkpoint": str(ckpt_path) if ckpt_path else None,  # resumed from (fit) or tested (train=false)
        "seed": cfg.seed,
        "overrides": current_job_identity(),  # which sweep job these results are of (skip_finished)
        # NaN/inf metrics (e.g. a test loss that overflowed) are flagged, never reported silently.
        # (Not those of replicas that diverged: their values are NaN by design, and they are failed.)
        "nonfinite_metrics": sorted(k for k, v in metrics.items() if not math.isfinite(v) and not k.startswith(frozen)),
    }
    if results["nonfinite_metrics"]:
        log.warning("non-finite metrics (NaN/inf): %s; see results.json", ", ".join(results["nonfinite_metrics"]))
    if trainer.is_global_zero and replicas > 1:
        # One run per seed: replica_<k>/results.json, then replicas.json (the job's value: their mean).
        own = [stacked_net.member_parameters(k) for k in range(replicas)]
        results = {
            **results,
            **write_replica_results(output_dir, results, replica_cfgs, current_job_identity(), own, packed, failed),
        }
    elif trainer.is_global_zero:
        write_results(output_dir, results)
    if name and (f"replica_0/{name}" if replicas > 1 else name) not in metrics:
        log.warning("optimized_metric=%s was not logged; logged metrics: %s", name, sorted(metrics))
    if trainer.is_global_zero:
        summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        if fit and ckpt_path:  # the seconds are this run's, the epochs counted from the start
            log.info("%d epochs, resumed from %s, this run's in %.1f s: %s", epochs, ckpt_path, fit_seconds, summary)
        elif fit:
            log.info("%d epochs in %.1f s: %s", epochs, fit_seconds, summary)
        else:
            log.info("tested %s (no training): %s", ckpt_path or "the given weights", summary)
        log.info("run dir: %s", output_dir)
    return results


def _finished(output_dir: Path, identity: list[str]) -> dict[str, Any] | None:
    try:
        return finished_results(output_dir, identity)
    except UserError as err:  # a corrupt results.json: run the job again
        log.warning("skip_finished: %s; running the job again", err)
        return None


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def cli() -> None:
    """``python src/train.py ...`` / ``dlf-train ...``: Hydra's entry, plus the valid keys when an
    override names a key that does not exist."""
    run_entry(hydra_main)


@hydra.main(version_base="1.3", config_path="pkg://dlfoundations.conf", config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Command-line entry; returns the optimized metric for Hydra sweepers.

    A failing job of a multirun records ``failure.json`` and returns None, so the other jobs and
    the sweep summary still run; a single run prints user mistakes as one line and exits 2.
    """
    output_dir = Path(cfg.paths.output_dir)
    identity = current_job_identity()
    in_sweep = _in_multirun() and is_launching_process()
    if cfg.get("skip_finished") and identity is not None and (done := _finished(output_dir, identity)):
        # Re-launching a sweep into its own sweep dir completes it: a job dir whose results are of
        # exactly this job's overrides is not run again (job numbers alone may name other jobs).
        log.info("skip_finished: %s holds this job's results, not running it again", output_dir / "results.json")
        if in_sweep:
            record_job(output_dir, identity)  # one of this launch's jobs
        return done.get("optimized_value")
    if _in_multirun() and slurm_restarts() == 0:
        last = last_checkpoint(output_dir)
        # Decided on every rank (DDP re-runs the script): the files it reads are the same for all.
        interrupted = (
            cfg.get("skip_finished")
            and last is not None
            and not (output_dir / "failure.json").exists()  # a job that failed runs again, from the start
            and recorded_identity(output_dir) == identity
            and not cfg.get("ckpt_path")
        )
        if interrupted:
            # This job, interrupted (Ctrl-C, a kill): it resumes from its own last checkpoint,
            # exactly as a single run does with ckpt_path=<its last.ckpt>.
            log.info("skip_finished: resuming this job from its own %s", last)
            with open_dict(cfg):
                cfg.ckpt_path = str(last)
        # A re-used job dir (re-launch into the same sweep dir) must not mix two jobs' files. A job
        # that SLURM restarted (requeue) is the same job: it keeps its files and resumes from them.
        elif in_sweep and (aside := set_aside_previous(output_dir, identity)):
            log.info("moved what an earlier job left in %s to %s", output_dir, aside)
        if in_sweep:
            record_job(output_dir, identity)
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
        raise RunFailed(f"the run failed: {type(err).__name__}: {err}") from err


if __name__ == "__main__":
    cli()
