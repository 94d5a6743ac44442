"""Ctrl-C on a run: say how to resume it.

Lightning handles KeyboardInterrupt inside ``fit``/``test``: it calls ``Callback.on_exception``,
finalizes the loggers (metrics.csv is kept) and exits with status 1. This callback prints, at that
point, the command that resumes the run from its ``last.ckpt``: the original command line with
``ckpt_path=<this run's last.ckpt>``.
"""

import re
import shlex
import sys
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint

_PLAIN = re.compile(r"[\w./:@%+,-]+")


def resume_command(ckpt_path: str, argv0: str | None = None, overrides: list[str] | None = None) -> str:
    """The shell command that reruns this process's command line with ``ckpt_path=<ckpt_path>``."""
    argv0 = argv0 if argv0 is not None else sys.argv[0]
    if overrides is None:
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    value = (
        ckpt_path if _PLAIN.fullmatch(ckpt_path) else "'" + ckpt_path.replace("\\", "\\\\").replace("'", "\\'") + "'"
    )
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "ckpt_path"]
    program = [sys.executable, argv0] if argv0.endswith(".py") else [argv0]
    return shlex.join([*program, *kept, f"ckpt_path={value}"])


class ResumeHint(L.Callback):
    """On Ctrl-C, print the resume command (or that there is no checkpoint to resume from yet)."""

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or not trainer.is_global_zero:
            return
        lasts: list[str | Path] = [
            cb.last_model_path for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)
        ]
        # A resumed run interrupted before its own first checkpoint resumes from where it started.
        lasts = [p for p in [*lasts, trainer.ckpt_path] if p and Path(p).is_file()]
        where = f"files written so far stay in {self.output_dir}"
        if lasts:
            print(
                f"interrupted; {where}. Resume with:\n{resume_command(str(Path(lasts[0]).resolve()))}",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                f"interrupted before the first checkpoint (no last.ckpt to resume from); {where}",
                file=sys.stderr,
                flush=True,
            )
