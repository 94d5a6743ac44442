"""Ctrl-C on a run: say how to resume it.

Lightning handles KeyboardInterrupt inside ``fit``/``test``: it finalizes the loggers (metrics.csv
is kept), marks the trainer ``interrupted`` and exits with status 1 (``SystemExit``). train.py then
prints the command that resumes the run from its ``last.ckpt``: the original command line with
``ckpt_path=<this run's last.ckpt>``. Not a callback: Lightning calls every per-step hook of every
callback (three per optimizer step), which costs small models a measurable share of each step.
"""

import re
import shlex
import sys
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import ModelCheckpoint

from dlfoundations.config.overrides import without_keys
from dlfoundations.record.jobs import sweep_resume_command

_PLAIN = re.compile(r"[\w./:@%+,-]+")


def resume_command(ckpt_path: str, argv0: str | None = None, overrides: list[str] | None = None) -> str:
    """The shell command that reruns this process's command line with ``ckpt_path=<ckpt_path>``."""
    argv0 = argv0 if argv0 is not None else sys.argv[0]
    if overrides is None:
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    value = (
        ckpt_path if _PLAIN.fullmatch(ckpt_path) else "'" + ckpt_path.replace("\\", "\\\\").replace("'", "\\'") + "'"
    )
    kept = without_keys(overrides, ["ckpt_path"])
    program = [sys.executable, argv0] if argv0.endswith(".py") else [argv0]
    return shlex.join([*program, *kept, f"ckpt_path={value}"])


def print_resume_hint(trainer: L.Trainer, output_dir: str | Path) -> None:
    """After Ctrl-C (``trainer.interrupted``): print the resume command, or that there is no
    checkpoint to resume from yet. Only the launching (rank-0) process prints."""
    if not trainer.interrupted or not trainer.is_global_zero:
        return
    lasts: list[str | Path] = [
        cb.last_model_path for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)
    ]
    # A resumed run interrupted before its own first checkpoint resumes from where it started.
    lasts = [p for p in [*lasts, trainer.ckpt_path] if p and Path(p).is_file()]
    where = f"files written so far stay in {output_dir}"
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        # A sweep job: a single-run command would write outside the sweep dir. Relaunching the
        # sweep with skip_finished=true resumes this job from its last.ckpt.
        what = "this job resumes from its last.ckpt" if lasts else "this job starts again"
        print(
            f"interrupted; {where}. Complete the sweep ({what}) with:\n"
            f"{sweep_resume_command(HydraConfig.get().sweep.dir)}",
            file=sys.stderr,
            flush=True,
        )
    elif lasts:
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
