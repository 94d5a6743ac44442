"""The Hydra callbacks that read the records when the runs are done: a multirun's summary at its end
(or when it ends early), and a single run's reproduction report."""

import atexit
import inspect
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from dlfoundations.errors import UserError
from dlfoundations.record.jobs import REPLICAS_FILE, is_launching_process, start_launch, sweep_resume_command
from dlfoundations.results.report import write_report
from dlfoundations.results.summary import log_summary_to_wandb, write_summary

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write the summary of its sweep dir; also when the
    multirun ends early (Ctrl-C, a crash of the launcher): then for the jobs that finished.

    Only the launching process summarizes: the copies of the script that Lightning's DDP starts
    for ranks > 0 run the multirun too, and would summarize before rank 0 has written results.
    """

    def __init__(self, **options: Any) -> None:
        """``options``: the keyword arguments of :func:`write_summary` (x, y, labels, group_by, band,
        replicate_keys, epsilon, ...; see conf/hydra/default.yaml), checked here, not at the end."""
        known = set(inspect.signature(write_summary).parameters) - {"sweep_dir"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"sweep_summary has no option {unknown}; its options: {sorted(known)}")
        self.options: dict[str, Any] = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in options.items()}
        self._pending: DictConfig | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.launcher.get("dry_run"):
            return  # hydra/launcher=packed's dry run: it prints the plan and runs no job
        if is_launching_process():
            start_launch(Path(config.hydra.sweep.dir))  # the summary reads this launch's jobs only
            self._pending = config
            # atexit also runs when KeyboardInterrupt or SystemExit (Lightning's answer to Ctrl-C
            # during fit) ends the multirun before on_multirun_end; the exit code stays non-zero.
            atexit.register(self._summarize_if_interrupted)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._pending = None
        if not is_launching_process():
            return
        sweep_dir, summary = self._summarize(config)
        if summary["failed"]:
            total = len(summary["rows"]) + len(summary["failed"])
            sys.exit(
                f"error: {len(summary['failed'])} of {total} sweep jobs failed (see {sweep_dir / 'failed.txt'})"
                + (f"; the others are in {sweep_dir / 'summary.csv'}" if summary["rows"] else "")
            )

    def _summarize_if_interrupted(self) -> None:
        config, self._pending = self._pending, None
        if config is None:
            return
        log.warning("the multirun stopped before its end: summarizing the jobs that finished")
        try:
            sweep_dir, _ = self._summarize(config)
        except Exception:  # the interpreter is exiting: report, never mask the original exit
            log.exception("could not write the sweep summary")
            return
        log.warning("to run the remaining jobs (interrupted ones resume): %s", sweep_resume_command(sweep_dir))

    def _summarize(self, config: DictConfig) -> tuple[Path, dict[str, Any]]:
        sweep_dir = Path(config.hydra.sweep.dir)
        summary = write_summary(sweep_dir, **self.options)
        wandb_cfg = (config.get("logger") or {}).get("wandb")
        if wandb_cfg and summary["rows"]:
            log_summary_to_wandb(sweep_dir, summary["rows"], project=wandb_cfg.get("project", "dlfoundations"))
        where = ", ".join(str(p) for p in summary["written"]) or "nothing written"
        log.info("sweep summary: %d finished, %d failed -> %s", len(summary["rows"]), len(summary["failed"]), where)
        return sweep_dir, summary


class RunReport(Callback):
    """Hydra callback: a single run of an experiment with a ``reference:`` block ends with its
    reproduction report (``report.md``, ``report.json`` in the run dir). A multirun writes one report
    for all its jobs, in its summary."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn | None = None, **kwargs: Any) -> None:
        # The job's end, not the run's: only here is the job's Hydra config (its run dir) still set.
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            return
        # Lightning sets rank on the function (documented); its stubs do not declare it.
        rank = getattr(rank_zero_only, "rank", 0)
        if job_return is None or job_return.status != JobStatus.COMPLETED or not config.get("reference") or rank:
            return
        run_dir = Path(config.paths.output_dir)
        if not any((run_dir / name).exists() for name in ("results.json", REPLICAS_FILE)):
            return  # a run that wrote no results (eval): nothing to compare
        try:
            report = write_report(run_dir)
        except UserError as err:
            log.warning("no reproduction report: %s", err)
            return
        log.info(
            "reproduction report: %d within tolerance, %d out of tolerance, %d not measured -> %s",
            report["passed"],
            report["out_of_tolerance"],
            report["not_measured"],
            run_dir / "report.md",
        )
