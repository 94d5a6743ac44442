"""Checkpoints that survive a crash and load safely.

- :class:`AtomicCheckpointIO`: every checkpoint (``last.ckpt`` included) is written to a temporary
  file and renamed into place, so a kill mid-write never leaves a half-written checkpoint.
- :func:`resolve_ckpt_path`: ``ckpt_path=last`` means the newest ``checkpoints/last.ckpt`` of
  this task's earlier runs whose config is this run's, apart from :data:`RESUME_IGNORED`.
- :func:`check_weight_sources`: refuses the ``train``/``test``/``ckpt_path``/``weights``
  combinations that would test weights other than the ones asked for.
- :func:`check_checkpoint`: a checkpoint must load with ``weights_only=True`` and fit the model.
- :func:`load_weights`: a state dict (or a checkpoint's net) into a bare model.
"""

import logging
import os
from pathlib import Path
from typing import Any, cast

import torch
import yaml
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dlfoundations.atomic import atomic_write
from dlfoundations.config.schemas import TRAINER_BOOKKEEPING, root_keys
from dlfoundations.errors import UserError
from dlfoundations.run.trainer import MOVED_TARGETS

log = logging.getLogger(__name__)

# Keys that may differ between a run and the run that resumes it with ckpt_path=last: how long it
# runs, what it logs and plots, where it writes, and what it does after fit (the roles on the root
# schema). Everything else (seed, data, model, task, optimizer, scheduler, ...) must be equal.
RESUME_IGNORED = (*root_keys(bookkeeping=True), *TRAINER_BOOKKEEPING)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, made atomic (temporary file + rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def relocatable(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config with every value that lies under one of its ``paths.*`` written as
    ``${paths.<key>}/...``, so that the configs of two runs compare wherever they ran."""
    paths = config.get("paths") or {}
    # Longest first (output_dir lies under log_dir, which lies under root_dir); among equal paths
    # (a run whose root_dir is its output_dir) the most specific name.
    order = ("output_dir", "log_dir", "data_dir", "root_dir")
    prefixes = sorted(
        ((v.rstrip("/"), k) for k, v in paths.items() if isinstance(v, str) and v.rstrip("/")),
        key=lambda item: (-len(item[0]), order.index(item[1]) if item[1] in order else len(order)),
    )

    def fix(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, str):
            for prefix, key in prefixes:
                if value == prefix or value.startswith(prefix + "/"):
                    return "${paths." + key + "}" + value[len(prefix) :]
        return value

    return {k: v if k == "paths" else fix(v) for k, v in config.items()}


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): tree}


def config_differences(
    saved: dict[str, Any], current: dict[str, Any], ignored: tuple[str, ...] = RESUME_IGNORED
) -> list[str]:
    """``key (X there, Y here)`` for every key outside ``ignored`` whose value differs."""
    a, b = _flat(relocatable(saved)), _flat(relocatable(current))
    for flat in (a, b):  # a run written before its trainer's module moved is the same run
        if flat.get("trainer._target_") in MOVED_TARGETS:
            flat["trainer._target_"] = MOVED_TARGETS[flat["trainer._target_"]]
    absent = "<absent>"
    return [
        f"{k} ({a.get(k, absent)!r} there, {b.get(k, absent)!r} here)"
        for k in sorted(a.keys() | b.keys())
        if not any(k == i or k.startswith(i + ".") for i in ignored) and a.get(k, absent) != b.get(k, absent)
    ]


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``cfg.ckpt_path``, where ``last`` is the newest ``<log_dir>/<task_name>/runs/*/checkpoints/last.ckpt``
    of a run whose ``config.yaml`` equals ``cfg`` apart from :data:`RESUME_IGNORED`; newer runs
    with another config are skipped (and logged), and without any such run it refuses in one line."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path != "last":
        return ckpt_path
    runs = Path(cfg.paths.log_dir, cfg.task_name, "runs")
    candidates = sorted(runs.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not candidates:
        raise UserError(f"ckpt_path=last: no checkpoints/last.ckpt under {runs}; pass the checkpoint's path instead")
    current = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    skipped: list[tuple[str, list[str]]] = []
    for ckpt in candidates:
        try:
            # Not checked here: a config that is not a mapping fails in config_differences (caught below).
            saved = cast(
                dict[str, Any],
                OmegaConf.to_container(OmegaConf.load(ckpt.parent.parent / "config.yaml"), resolve=False),
            )
            differences = config_differences(saved, current)
        except (OSError, ValueError, AttributeError, yaml.YAMLError) as err:  # missing, unreadable, not a mapping
            differences = [f"config.yaml (unreadable there: {type(err).__name__})"]
        if not differences:
            for name, diff in skipped:
                log.info("ckpt_path=last: skipped the newer run %s, whose config differs in %s", name, "; ".join(diff))
            log.info("ckpt_path=last: resuming %s", ckpt)
            return str(ckpt)
        skipped.append((ckpt.parent.parent.name, differences))
    name, diff = skipped[0]
    more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
    raise UserError(
        f"ckpt_path=last: no run under {runs} has this config; the newest, {name}, differs in "
        f"{'; '.join(diff[:4])}{more}: use that run's values, or pass a checkpoint's path"
    )


def check_weight_sources(train: bool, test: bool, ckpt_path: str | None, weights: str | None) -> None:
    """Refuse, in one line, the combinations that would test other weights than the ones asked for."""
    if not train and not test:
        raise UserError("train=false and test=false leave nothing to do; drop one of them")
    if not train and not ckpt_path and not weights:
        raise UserError(
            "train=false would test an untrained model; pass ckpt_path=<checkpoint> or weights=<file> "
            "(or python src/eval.py ckpt_path=<run dir>)"
        )
    if not train and ckpt_path and weights:
        raise UserError(
            f"train=false with both ckpt_path={ckpt_path} and weights={weights}: "
            "which weights to test is ambiguous; pass only one of them"
        )


def _load(path: str, what: str) -> dict[str, Any]:
    if not Path(path).is_file():
        raise UserError(f"{what}={path} is not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{what}={path} is not a readable weights-only torch file ({first})") from err


def _mismatch(expected: dict[str, torch.Tensor], found: dict[str, Any]) -> str | None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = sorted(k for k in set(expected) & set(found) if tuple(expected[k].shape) != tuple(found[k].shape))
    parts = [
        f"{label} {keys[:3]}{' ...' if len(keys) > 3 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shapes for", shapes))
        if keys
    ]
    return "; ".join(parts) or None


def check_checkpoint(path: str, module: nn.Module) -> dict[str, Any]:
    """Fail with one line unless ``path`` is a weights-only checkpoint of ``module``'s shape; return it."""
    checkpoint = _load(path, "ckpt_path")
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if state is None:
        raise UserError(f"ckpt_path={path} is not a Lightning checkpoint (no state_dict)")
    problem = _mismatch(module.state_dict(), state)
    if problem:
        raise UserError(
            f"ckpt_path={path} was saved from another model ({problem}); "
            "use the model config (model=..., model.width, model.batch_norm) it was trained with"
        )
    return checkpoint


def load_weights(net: nn.Module, path: str) -> None:
    """Load ``path`` (a state dict of ``net``, or a Lightning checkpoint of the task) into ``net``."""
    state = _load(path, "weights")
    if "state_dict" in state:  # a Lightning checkpoint: the net's keys are prefixed with "net."
        state = {k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")}
    problem = _mismatch(net.state_dict(), state)
    if problem:
        raise UserError(
            f"weights={path} does not fit the configured model {type(net).__name__} ({problem}); "
            "check model=... and its options (e.g. model.batch_norm, model.width)"
        )
    net.load_state_dict(state, strict=True)
