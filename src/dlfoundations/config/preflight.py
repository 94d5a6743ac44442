"""Checks that run before anything is trained, each failing with one line that names the fix.

- :func:`check_task_name`: values that form paths (``task_name``) stay inside ``paths.log_dir``.
  :class:`RunDirGuard` applies it as a Hydra callback, before Hydra creates the run dir.
- :func:`check_options`: every data/model config key is an argument of its class (types are the
  schemas' job, at compose time).
- :func:`check_optimizer`: the optimizer's constructor accepts its values (``optimizer.lr=-1``).
- :func:`check_memory`: the model (times ``replicas``), its gradients, optimizer state and a
  batch's activations, estimated on the meta device, fit in the device's free memory.
- :func:`check_monitors`: a callback that acts on an evaluation set's metric (early stopping at
  100% train accuracy) has that set evaluated (``data.eval_sets``); else it would never act.
- :func:`check_data_dir`: the data dir is a directory, and what the data module will write
  there (downloads, caches: ``files_to_write``) can be written.
- :func:`check_fit`: the model is built and run on a zero batch of ``data.input_shape``; its output
  must suit the task. When it does not, the message names the data configs (and tasks) that fit,
  found by the same check on every config in ``conf/data`` and ``conf/task``.
"""

import copy
import sys
import tempfile
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, cast

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from dlfoundations.config import sizing
from dlfoundations.config.objects import instantiate
from dlfoundations.config.schemas import HYDRA_KEYS, constructor_arguments
from dlfoundations.data.base import EVAL_SETS, check_eval_sets
from dlfoundations.errors import UserError
from dlfoundations.replicas.build import num_replicas, pack_widths


def preflight(cfg: DictConfig) -> None:
    """All checks of this module, cheapest first."""
    check_task_name(cfg.get("task_name"))
    check_options(cfg)
    check_optimizer(cfg)
    check_monitors(cfg)
    check_memory(cfg)
    check_fit(cfg)
    check_data_dir(cfg)


def check_monitors(cfg: DictConfig) -> None:
    """Every callback's ``monitor`` of an evaluation set (``train_eval/acc``) names a set that
    ``data.eval_sets`` evaluates during fit; otherwise the callback silently never acts."""
    evaluated = set(OmegaConf.select(cfg, "data.eval_sets", default=None) or [])
    # A typo in the sets is the mistake to name, not its effect below.
    check_eval_sets(list(OmegaConf.select(cfg, "data.eval_sets", default=None) or []))
    for name, node in (cfg.get("callbacks") or {}).items():
        monitor = node.get("monitor") if isinstance(node, DictConfig) else None
        where = str(monitor).split("/", 1)[0] if monitor else None
        if where in EVAL_SETS and where not in evaluated:
            raise UserError(
                f"callbacks.{name} acts on {monitor}, but data.eval_sets={sorted(evaluated)} does not evaluate "
                f"{where} during fit, so it would never act; add {where} to data.eval_sets or set callbacks.{name}=null"
            )


def check_memory(cfg: DictConfig) -> None:
    """Refuse, naming the estimate, a run whose lower-bound memory need (:mod:`dlfoundations.config.sizing`)
    exceeds the free memory of its device: it would thrash or be killed after minutes."""
    replicas, widths = num_replicas(cfg), pack_widths(cfg)
    if widths:  # every member padded to the widest
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.model.width = max(widths)
    size = sizing.estimate(cfg, replicas)
    room = sizing.available_bytes(str(cfg.trainer.get("accelerator", "auto")))
    if size is None or room is None or sizing.fits(size["bytes"], room[0]):
        return
    batch = int(cfg.data.get("batch_size") or 1)
    raise UserError(
        f"this run needs {sizing.describe(size, replicas, batch)}, and {room[1]} has {sizing.gib(room[0])} free; "
        "use a smaller model (model.width), fewer replicas or a smaller data.batch_size"
    )


# -- paths ------------------------------------------------------------------------------------
def check_task_name(name: Any) -> None:
    """``task_name`` names a folder under ``paths.log_dir``: relative, no ``..``, not empty."""
    text = str(name) if name is not None else ""
    parts = PurePosixPath(text).parts
    if not text.strip() or PurePosixPath(text).is_absolute() or ".." in parts or "\\" in text or "\0" in text:
        raise UserError(
            f"task_name={text!r} would put the run outside paths.log_dir; use a relative name "
            "without '..' (e.g. task_name=my_experiment, or project/my_experiment)"
        )


class RunDirGuard(Callback):
    """Hydra callback: refuse a bad ``task_name`` before Hydra creates a run or sweep dir from it."""

    def _check(self, config: DictConfig) -> None:
        try:
            check_task_name(OmegaConf.select(config, "task_name"))
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)


def _writable(folder: Path) -> bool:
    try:  # a real write: permission bits say nothing for root, read-only mounts or ACLs
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_data_dir(cfg: DictConfig) -> None:
    """The data config's folders (``data_dir``, ``cache_dir``) are directories, and whatever the
    data module will create (``files_to_write``: downloads, caches) can be written. A read-only
    folder is fine when nothing needs writing there (datasets already in place)."""
    data_dir = OmegaConf.select(cfg, "paths.data_dir", default=None)
    fix = "point paths.data_dir (or $DLF_DATA_DIR) at a writable directory"
    for key in ("data_dir", "cache_dir"):
        value = OmegaConf.select(cfg, f"data.{key}", default=None, throw_on_resolution_failure=False)
        name = f"paths.data_dir={value}" if value == data_dir else f"data.{key}={value}"
        if value and Path(value).exists() and not Path(value).is_dir():
            raise UserError(f"{name} is not a directory; {fix}")
    if "_target_" not in cfg.get("data", {}):
        return

    datamodule = instantiate(cfg.data, "data")  # constructors only check values; nothing is loaded
    for target in getattr(datamodule, "files_to_write", lambda: [])():
        folder = next(p for p in (Path(target), *Path(target).absolute().parents) if p.exists())
        value = (
            str(data_dir) if data_dir and Path(target).absolute().is_relative_to(Path(data_dir).absolute()) else None
        )
        name = f"paths.data_dir={value}" if value else str(target)
        if not folder.is_dir():
            raise UserError(f"{name}: {folder} is not a directory; {fix}")
        if not _writable(folder):
            raise UserError(
                f"{name} is not writable ({folder}), and {type(datamodule).__name__} needs to write "
                f"{target} there; {fix}, or put the files there first"
            )


# -- options ----------------------------------------------------------------------------------
def _choice(group: str) -> str | None:
    if HydraConfig.initialized():
        return HydraConfig.get().runtime.choices.get(group)
    return None


def _conf_files(group: str) -> dict[str, DictConfig]:
    folder = resources.files("dlfoundations.conf").joinpath(group)
    # Group files are mappings.
    return {
        p.name.removesuffix(".yaml"): cast(DictConfig, OmegaConf.load(str(p)))
        for p in folder.iterdir()
        if p.name.endswith(".yaml")
    }


def check_options(cfg: DictConfig) -> None:
    """Keys of ``data`` and ``model`` that are no argument of their class."""
    for group in ("data", "model"):
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        cls = hydra.utils.get_object(node._target_)
        arguments, _, open_ = constructor_arguments(cls)
        label = f"{group}={_choice(group) or getattr(cls, '__name__', node._target_)}"
        unknown = sorted(str(k) for k in node if k not in arguments and k not in HYDRA_KEYS)
        if unknown and not open_:
            raise UserError(
                f"{label} has no option {', '.join(unknown)} (an experiment may set it); its options: "
                f"{', '.join(sorted(arguments))}. Remove it with ~{group}.{unknown[0]} or choose "
                f"another {group} config"
            )


def check_optimizer(cfg: DictConfig) -> None:
    """Build the configured optimizer on one parameter, so that its constructor's range checks
    (``lr >= 0``, ...) stop a bad value now, in one line, not in the middle of ``fit``."""
    node = cfg.get("optimizer")
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    from dlfoundations.tasks.optim import build_optimizer

    factory = instantiate(node, "optimizer")
    try:
        build_optimizer(factory, nn.Linear(1, 1))
    except (ValueError, TypeError) as err:
        raise UserError(f"optimizer: {_first_line(err)}") from err


# -- model x data x task ----------------------------------------------------------------------
def _task_problem(task_cls: type, net: nn.Module, out: torch.Tensor, num_classes: int, data: str) -> str | None:
    from dlfoundations.tasks import ClassificationModule, RidgeRegression

    if issubclass(task_cls, RidgeRegression):
        if not (hasattr(net, "features") and hasattr(net, "theta")):
            return (
                f"task=ridge fits the last layer (net.theta) of a features model (net.features); "
                f"{type(net).__name__} is none"
            )
        if num_classes != 1:
            return f"task=ridge regresses real-valued targets, and data={data} has {num_classes} classes"
    elif issubclass(task_cls, ClassificationModule):
        if num_classes < 2:
            return f"task=classification needs class labels, and data={data} has real-valued targets"
        if tuple(out.shape) != (2, num_classes):
            return (
                f"its output per sample has shape {list(out.shape[1:])}, and task=classification needs "
                f"[{num_classes}] logits (data.num_classes)"
            )
    return None


def _problem(
    cfg: DictConfig, task_cls: type, shape: list[int], num_classes: int, data: str, strict: bool = False
) -> str | None:
    """Why the configured model cannot be trained by ``task_cls`` on data of ``shape`` and
    ``num_classes`` (None if it can). ``strict``: construction errors are the user's (raised)."""
    probe = copy.deepcopy(cfg)  # keeps the root, so the model's interpolations resolve
    with open_dict(probe):
        probe.data.input_shape, probe.data.num_classes = list(shape), num_classes
    try:
        with torch.random.fork_rng(devices=[]):  # the run's random streams stay untouched
            net = hydra.utils.instantiate(probe.model, _convert_="all")
    except Exception as err:
        cause = err.__cause__ or err
        if isinstance(cause, OmegaConfBaseException):  # e.g. ${data.input_shape.1} of 1-d inputs
            return f"its config does not resolve for these inputs ({_first_line(cause)})"
        if strict and isinstance(cause, UserError):
            raise cause from None
        if strict and isinstance(cause, (ValueError, TypeError)):
            raise UserError(f"model: {cause}") from err
        return f"it cannot be built for it ({_first_line(cause)})"
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(2, *shape))
    except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as err:
        return f"a batch of shape {[2, *shape]} fails in its forward pass ({_first_line(err)})"
    return _task_problem(task_cls, net, out, num_classes, data)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def check_fit(cfg: DictConfig) -> None:
    """Build the model, run it on a zero batch of ``data.input_shape`` and check its output against
    the task; if that fails, one line naming the data configs (or tasks) that fit the model."""
    shape, num_classes = cfg.data.get("input_shape"), cfg.data.get("num_classes")
    if shape is None or num_classes is None or "_target_" not in cfg.get("model", {}):
        return
    task_cls = hydra.utils.get_class(cfg.task._target_) if "_target_" in cfg.get("task", {}) else object
    data = _choice("data") or "this data"
    problem = _problem(cfg, task_cls, list(shape), int(num_classes), data, strict=True)
    if problem is None:
        return
    model, task = _choice("model") or cfg.model._target_.rsplit(".", 1)[-1], _choice("task") or task_cls.__name__
    candidates = {
        name: (list(c.input_shape), int(c.num_classes))
        for name, c in _conf_files("data").items()
        if OmegaConf.is_list(c.get("input_shape")) and isinstance(c.get("num_classes"), int)
    }

    def fitting(t_cls: type) -> list[str]:
        return sorted(d for d, (s, k) in candidates.items() if _problem(cfg, t_cls, s, k, d) is None)

    fits = fitting(task_cls)
    where = f"data={data} (input shape {list(shape)}, {num_classes} {'classes' if num_classes > 1 else 'output'})"
    if fits:
        raise UserError(
            f"model={model} (task={task}) cannot take {where}: {problem}; data configs that fit: {', '.join(fits)}"
        )
    others = [
        (name, fitting(hydra.utils.get_class(c._target_)))
        for name, c in _conf_files("task").items()
        if name != task and "_target_" in c
    ]
    others = [(name, fits) for name, fits in others if fits]
    if others:
        use = "; or ".join(f"task={name} with data={'|'.join(fits)}" for name, fits in others)
        raise UserError(f"model={model} cannot be trained by task={task} on {where}: {problem}; use {use}")
    raise UserError(f"model={model} (task={task}) cannot take {where}: {problem}; no data config in conf/data fits it")
