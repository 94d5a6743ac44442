"""The spine: compose -> seed -> instantiate data, model, task, trainer -> fit -> test -> results.

``python src/train.py experiment=memorize`` (or the ``dlf-train`` console script) ends up in
:func:`cli`; tests and notebooks call :func:`main` with a composed config.
"""

import io
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import rich.console
import torch
from hydra.errors import InstantiationException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from dlfoundations.config import config_tree, register_resolvers, trainer_kwargs
from dlfoundations.errors import UserError
from dlfoundations.io import atomic_write_json, atomic_write_text
from dlfoundations.models import count_parameters

log = logging.getLogger(__name__)
register_resolvers()
# The run dir already holds config.yaml when the CSV logger starts; its warning about a non-empty
# dir is expected here (it only ever replaces its own metrics.csv).
warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
# data.eval_sets=[] means no per-epoch evaluation on purpose.
warnings.filterwarnings("ignore", message=r"Total length of `list` across ranks is zero")
# The closed-form ridge task has no optimizer on purpose.
warnings.filterwarnings("ignore", message=r".*configure_optimizers` returned `None`")
# Lightning's own use of a deprecated torch API; nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# Lightning advertises its cloud products at every Trainer start; that is noise in a research log.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith("💡")
)


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
def load_weights(net: torch.nn.Module, path: str) -> None:
    """Load ``path`` (a state dict of ``net``, or a Lightning checkpoint of the task) into ``net``."""
    if not Path(path).is_file():
        raise UserError(f"weights={path} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"weights={path} is not a readable weights-only torch file ({err})".splitlines()[0]) from err
    if "state_dict" in state:  # a Lightning checkpoint: the net's keys are prefixed with "net."
        state = {k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UserError(
            f"weights={path} does not fit the configured model {type(net).__name__} "
            f"({str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else err}); "
            "check model=... and its options (e.g. model.batch_norm, model.width)"
        ) from err


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
    output_dir = Path(cfg.paths.output_dir)
    trainer_args = trainer_kwargs(cfg.trainer)  # fail on a missing GPU before any work is done
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
    trainer = L.Trainer(**trainer_args, callbacks=callbacks, logger=loggers or False)
    hparams = OmegaConf.to_container(cfg, resolve=True)
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)

    start = time.perf_counter()
    if cfg.get("train", True):
        trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
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


@hydra.main(version_base="1.3", config_path="pkg://dlfoundations.conf", config_name="train")
def cli(cfg: DictConfig) -> float | None:
    """Command-line entry; returns the optimized metric for Hydra sweepers."""
    try:
        return main(cfg)["optimized_value"]
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
