"""Checkpoints that survive a crash and load safely.

- :class:`AtomicCheckpointIO`: every checkpoint (``last.ckpt`` included) is written to a temporary
  file and renamed into place, so a kill mid-write never leaves a half-written checkpoint.
- :func:`resolve_ckpt_path`: ``ckpt_path=last`` means the newest ``checkpoints/last.ckpt`` of
  this task's earlier runs.
- :func:`check_checkpoint`: a checkpoint must load with ``weights_only=True`` and fit the model.
- :func:`load_weights`: a state dict (or a checkpoint's net) into a bare model.
"""

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from dlfoundations.errors import UserError
from dlfoundations.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, made atomic (temporary file + rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def resolve_ckpt_path(ckpt_path: str | None, log_dir: str, task_name: str) -> str | None:
    """``last`` -> the newest ``<log_dir>/<task_name>/runs/*/checkpoints/last.ckpt``."""
    if ckpt_path != "last":
        return ckpt_path
    candidates = sorted(Path(log_dir, task_name, "runs").glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise UserError(f"ckpt_path=last: no checkpoints/last.ckpt under {Path(log_dir, task_name, 'runs')}; "
                        "pass the checkpoint's path instead")
    return str(candidates[-1])


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
    parts = [f"{label} {keys[:3]}{' ...' if len(keys) > 3 else ''}" for label, keys in
             (("missing", missing), ("unexpected", unexpected), ("other shapes for", shapes)) if keys]
    return "; ".join(parts) or None


def check_checkpoint(path: str, module: nn.Module) -> None:
    """Fail with one line unless ``path`` is a weights-only checkpoint of ``module``'s shape."""
    state = _load(path, "ckpt_path").get("state_dict")
    if state is None:
        raise UserError(f"ckpt_path={path} is not a Lightning checkpoint (no state_dict)")
    problem = _mismatch(module.state_dict(), state)
    if problem:
        raise UserError(f"ckpt_path={path} was saved from another model ({problem}); "
                        "use the model config (model=..., model.width, model.batch_norm) it was trained with")


def load_weights(net: nn.Module, path: str) -> None:
    """Load ``path`` (a state dict of ``net``, or a Lightning checkpoint of the task) into ``net``."""
    state = _load(path, "weights")
    if "state_dict" in state:  # a Lightning checkpoint: the net's keys are prefixed with "net."
        state = {k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")}
    problem = _mismatch(net.state_dict(), state)
    if problem:
        raise UserError(f"weights={path} does not fit the configured model {type(net).__name__} ({problem}); "
                        "check model=... and its options (e.g. model.batch_norm, model.width)")
    net.load_state_dict(state, strict=True)
