"""A composed config: the checks the schemas cannot make (:func:`validate`), and its display.

Types are checked by the schemas (schemas.py) when Hydra composes; ranges by the constructors.
"""

import dataclasses
import difflib
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from dlfoundations.config.schemas import EvalConfig
from dlfoundations.errors import UserError

if TYPE_CHECKING:
    import rich.tree

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
        if isinstance(value, DictConfig):
            text = OmegaConf.to_yaml(value, resolve=True)
        elif isinstance(value, ListConfig):  # plain values, also of a typed list (figures: [summary, ...])
            text = repr(OmegaConf.to_container(value, resolve=True, enum_to_str=True))
        else:
            text = repr(value)
        branch.add(rich.syntax.Syntax(text, "yaml", theme="ansi_dark"))
    return tree


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


ROOT_KEYS = tuple(f.name for f in dataclasses.fields(EvalConfig))  # train's keys and eval's


def unknown_root_key(cfg: DictConfig) -> None:
    """Refuse a root key no schema knows (``+modle=cnn1d``): it would be ignored, silently."""
    for key in map(str, cfg):
        if key not in ROOT_KEYS:
            close = difflib.get_close_matches(key, ROOT_KEYS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"root keys are {', '.join(ROOT_KEYS)}"
            raise UserError(f"{key} is no key of this config (it would do nothing); {hint}")


def validate(cfg: DictConfig) -> None:
    """Raise one :class:`UserError` for a value the config leaves unset (``???``), a root key out
    of range (it has no constructor to check it), and the Trainer options this project's training
    step replaces."""
    unknown_root_key(cfg)
    missing = sorted(_missing_keys(cfg))
    if missing:
        raise UserError(f"{missing[0]} has no value; set it on the command line, e.g. {missing[0]}=...")
    seed = cfg.get("seed")
    if isinstance(seed, int) and not 0 <= seed < 2**32:
        # Lightning's seed_everything would replace it by 0, with only a warning.
        raise UserError(f"seed={seed} is out of range; use a value >= 0 and < 2**32")
    trainer = cfg.get("trainer") or {}
    if cfg.get("train", True) and 0 in (trainer.get("max_epochs"), trainer.get("max_steps")):
        key = "max_epochs" if trainer.get("max_epochs") == 0 else "max_steps"
        raise UserError(
            f"trainer.{key}=0 trains nothing; to test weights without training use train=false with weights=... "
            "or ckpt_path=..."
        )
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
