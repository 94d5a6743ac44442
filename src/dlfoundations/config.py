"""Config helpers: OmegaConf resolvers, the ``trainer.gpus`` shim, the rich config tree."""

import logging
import math
import netrc
import os
import secrets
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from dlfoundations.errors import UserError

if TYPE_CHECKING:
    import rich.tree

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


def _local_jobs(jobs_per_gpu: int, cpu_jobs: int | None) -> int:
    from dlfoundations.sweeps.devices import local_jobs

    return local_jobs(int(jobs_per_gpu), int(cpu_jobs) if cpu_jobs not in (None, "None") else None)


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
        "dlf.wandb_offline": (_wandb_offline, True),
        "dlf.sweep_group": (_sweep_group, False),
        "dlf.local_jobs": (_local_jobs, False),
    }
    for name, (fn, cache) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cache)


def trainer_kwargs(trainer_cfg: DictConfig) -> dict[str, Any]:
    """Trainer arguments from ``cfg.trainer``, mapping Lightning 1.x ``gpus=N`` to
    ``accelerator="gpu", devices=N`` and failing with one clear line when CUDA is missing."""
    kwargs = cast(dict[str, Any], OmegaConf.to_container(trainer_cfg, resolve=True))
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


CONFIG_ORDER = (
    "experiment",
    "seed",
    "data",
    "model",
    "task",
    "optimizer",
    "scheduler",
    "trainer",
    "callbacks",
    "logger",
    "paths",
)


def config_tree(cfg: DictConfig) -> "rich.tree.Tree":
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


def quiet_known_noise() -> None:
    """Silence warnings and log lines that are expected in this project and need no action."""
    for message in (
        # The run dir already holds config.yaml when the CSV logger starts (it only ever replaces
        # its own metrics.csv).
        r"Experiment logs directory .* exists and is not empty",
        r"Total length of `list` across ranks is zero",  # data.eval_sets=[]: no per-epoch evaluation
        r".*configure_optimizers` returned `None`",  # the closed-form ridge task has no optimizer
        r".*isinstance\(treespec, LeafSpec\)",  # Lightning's use of a deprecated torch API
        # training_step(dataloader_iter) is how the task takes several optimizer steps per call.
        r".*Found `dataloader_iter` argument in the `training_step`",
        # ... consumed several times per call on purpose; nothing here uses the hooks' batch_idx.
        r"You are using the `dataloader_iter` step flavor",
    ):
        warnings.filterwarnings("ignore", message=message)
    # Lightning advertises its cloud products at every Trainer start.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB}")
    )


# (key, type, lower bound, lower bound inclusive, upper bound) for values users set on the command
# line: checked once, before anything is built.
_RULES: list[tuple[str, type | tuple[type, ...], float | None, bool, float | None]] = [
    ("seed", int, 0, True, None),
    ("steps_per_call", int, 1, True, None),
    ("data.batch_size", int, 1, True, None),
    ("data.eval_batch_size", int, 1, True, None),
    ("data.label_noise", (int, float), 0, True, 1),
    ("data.train_size", int, 1, True, None),
    ("data.val_size", int, 0, True, None),
    ("data.test_size", int, 1, True, None),
    ("data.subset_size", int, 1, True, None),
    ("model.width", (int, float), 0, False, None),
    ("model.depth", int, 0, True, None),
    ("model.hidden", int, 1, True, None),
    ("optimizer.lr", (int, float), 0, False, None),
    ("optimizer.weight_decay", (int, float), 0, True, None),
    ("optimizer.momentum", (int, float), 0, True, 1),
    ("trainer.max_epochs", int, -1, True, None),
]


def _missing_keys(node: Any, prefix: str = "") -> list[str]:
    """Keys left ``???``, without resolving interpolations (one that cannot resolve, e.g. a model
    reading ``data.input_shape.1`` of 1-d data, is reported by the fit check instead)."""
    keys = range(len(node)) if OmegaConf.is_list(node) else list(node.keys())
    found = []
    for key in keys:
        name = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}" if prefix else str(key)
        if OmegaConf.is_missing(node, key):
            found.append(name)
        elif not OmegaConf.is_interpolation(node, key) and OmegaConf.is_config(node[key]):
            found += _missing_keys(node[key], name)
    return found


def validate(cfg: DictConfig) -> None:
    """Raise one :class:`UserError` for the first value of the wrong type or out of range, and for
    values the config leaves unset (``???``)."""
    missing = sorted(_missing_keys(cfg))
    if missing:
        raise UserError(f"{missing[0]} has no value; set it on the command line, e.g. {missing[0]}=...")
    for key, kind, low, inclusive, high in _RULES:
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        if value is None:
            continue
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            names = " or ".join("integer" if k is int else "number" for k in kinds)
            raise UserError(f"{key}={value!r} must be {'an' if names[0] == 'i' else 'a'} {names}")
        number = cast(float, value)  # an int or float: checked just above
        if low is not None and (number < low if inclusive else number <= low) or high is not None and number > high:
            bounds = f"{'>=' if inclusive else '>'} {low}" + (f" and <= {high}" if high is not None else "")
            raise UserError(f"{key}={value} is out of range; use a value {bounds}")
    trainer = cfg.get("trainer") or {}
    # The classification task optimizes manually (several steps per call); Lightning's automatic
    # clipping and accumulation do not apply to that, so they are task options.
    if trainer.get("gradient_clip_val") not in (None, 0):
        raise UserError(
            f"trainer.gradient_clip_val={trainer.get('gradient_clip_val')}: clipping is a task option here; "
            f"set task.gradient_clip_val={trainer.get('gradient_clip_val')} (and task.gradient_clip_algorithm)"
        )
    if trainer.get("accumulate_grad_batches") not in (None, 1):
        raise UserError(
            f"trainer.accumulate_grad_batches={trainer.get('accumulate_grad_batches')} is not supported; "
            "use a larger data.batch_size instead"
        )


def run_entry(entry: Callable[[], Any]) -> None:
    """Run a Hydra entry point (``@hydra.main`` function); when Hydra rejects an override whose key
    does not exist (exit 1), also print the valid keys at that place."""
    try:
        entry()
    except SystemExit as exit_:
        if exit_.code == 1:
            for hint in unknown_key_hints([a for a in sys.argv[1:] if not a.startswith("-")]):
                print(hint, file=sys.stderr)
        raise


def unknown_key_hints(overrides: list[str]) -> list[str]:
    """For ``key=value`` overrides whose key is not in the composed config, one line each naming
    the valid keys at that place (Hydra itself only says that the key is not in the struct)."""
    from hydra import compose, initialize_config_module

    plain = [o for o in overrides if "=" in o and not o.startswith(("+", "~", "hydra.", "-"))]
    groups = [o for o in plain if "." not in o.split("=", 1)[0]]
    try:
        with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
            cfg = compose("train", overrides=groups)
    except Exception:  # the group choice itself is wrong: Hydra's message already lists the options
        return []
    hints = []
    for override in plain:
        key = override.split("=", 1)[0]
        if "." not in key or OmegaConf.select(cfg, key, default="\0missing") != "\0missing":
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None)
        if isinstance(node, DictConfig):
            hints.append(
                f"error: {key} is not a config key; valid keys in {parent}: {', '.join(sorted(node))} "
                f"(add a new one with +{override})"
            )
        else:
            hints.append(f"error: {key} is not a config key; {parent} is not a config node")
    return hints


def compose_config(overrides: list[str], output_dir: str, data_dir: str | None = None) -> DictConfig:
    """Compose conf/train.yaml as the CLI would, for use outside the CLI (tests, benchmarks,
    notebooks): Hydra's job config is set, the run dir is ``output_dir``."""
    from pathlib import Path

    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    register_resolvers()
    with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir = cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(Path(output_dir) / "logs")
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg
