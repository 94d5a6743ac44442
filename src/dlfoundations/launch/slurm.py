"""The SLURM launcher (``hydra/launcher=slurm`` or ``slurm_cpu``): hydra-submitit-launcher's, made
safe for sweeps.

- Before submission, the request (CPUs, memory, GPUs per node) is checked against ``sinfo``: a
  request no node of the partition can satisfy fails in one line instead of pending forever.
- At submission the array's job id and its ``scancel`` command are printed; Ctrl-C or SIGTERM of
  the sweep process cancels the jobs that have not finished.
- A job that SLURM ends (scancel, time limit without requeue, out of memory, node failure) does not
  abort the sweep: the launcher writes ``failure.json`` (state, reason) into the job's dir, returns
  no value for it (as a job that raised does), and the sweep summary lists it in ``failed.txt``.
"""

import logging
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf, open_dict

from dlfoundations.atomic import atomic_write_json, atomic_write_text
from dlfoundations.errors import UserError
from dlfoundations.record.jobs import job_result
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher

log = logging.getLogger(__name__)
CLUSTER = "slurm"  # submitit's executor, and the prefix of its SLURM parameters (slurm_<name>)


def parse_sinfo(text: str) -> list[dict[str, Any]]:
    """Nodes from ``sinfo -h -N -o '%P|%N|%c|%m|%G'``: partition (``*`` marks the default), name,
    CPUs, memory in MB, GPUs (counted from gres ``gpu[:type]:N``)."""
    nodes = []
    for line in text.strip().splitlines():
        partition, name, cpus, mem, gres = (line.split("|") + [""] * 5)[:5]
        gpus = sum(int(n) for n in re.findall(r"gpu(?::[^:,()]+)?:(\d+)", gres))
        nodes.append(
            {
                "partition": partition.rstrip("*"),
                "default": partition.endswith("*"),
                "node": name,
                "cpus": int(re.sub(r"\D.*", "", cpus) or 0),
                "mem_mb": int(re.sub(r"\D.*", "", mem) or 0),
                "gpus": gpus,
            }
        )
    return nodes


def check_request(params: dict[str, Any], sinfo_text: str) -> str:
    """The partition the jobs go to; a :class:`UserError` naming the fix where no node of it can
    run one job as requested (CPUs x tasks, ``mem_gb``, ``gpus_per_node``)."""
    nodes = parse_sinfo(sinfo_text)
    partition = params.get("partition")
    if partition:
        nodes = [n for n in nodes if n["partition"] == partition]
        if not nodes:
            raise UserError(
                f"hydra.launcher.partition={partition} has no nodes (sinfo); list partitions with `sinfo -s`"
            )
    else:
        nodes = [n for n in nodes if n["default"]]
        if not nodes:
            raise UserError(
                "the cluster has no default partition; set hydra.launcher.partition=<name> (see `sinfo -s`)"
            )
        partition = nodes[0]["partition"]
    tasks = params.get("tasks_per_node") or 1
    cpus = (params.get("cpus_per_task") or 1) * tasks
    mem_mb = int((params.get("mem_gb") or 0) * 1024)
    gpus = params.get("gpus_per_node") or 0
    if any(n["cpus"] >= cpus and n["mem_mb"] >= mem_mb and n["gpus"] >= gpus for n in nodes):
        return partition
    best = max(nodes, key=lambda n: (n["gpus"], n["cpus"], n["mem_mb"]))
    raise UserError(
        f"no node of partition {partition} has {cpus} CPU(s), {mem_mb // 1024} GB and {gpus} GPU(s) for one job "
        f"(largest: {best['cpus']} CPUs, {best['mem_mb'] // 1024} GB, {best['gpus']} GPUs); lower "
        "hydra.launcher.cpus_per_task / mem_gb / gpus_per_node, or use hydra/launcher=slurm_cpu on a CPU-only cluster"
    )


def _sinfo() -> str:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        raise UserError(
            "hydra/launcher=slurm needs SLURM's sbatch and sinfo on PATH (run it on a cluster's login "
            "node; without SLURM use hydra/launcher=local)"
        )
    sinfo = subprocess.run(["sinfo", "-h", "-N", "-o", "%P|%N|%c|%m|%G"], capture_output=True, text=True)
    if sinfo.returncode != 0:
        raise UserError(f"sinfo failed ({' '.join(sinfo.stderr.split())}); is the SLURM controller up?")
    return sinfo.stdout


def slurm_reason(job_id: str) -> dict[str, str]:
    """State, reason, exit code and elapsed time of a job from ``sacct`` (empty where unknown)."""
    fields = ["State", "Reason", "ExitCode", "Elapsed"]
    try:
        out = (
            subprocess.run(
                ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", ",".join(fields)],
                capture_output=True,
                text=True,
                timeout=30,
            )
            .stdout.strip()
            .splitlines()
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    return {k.lower(): v for k, v in zip(fields, out[-1].split("|"))} if out else {}


class SlurmLauncher(SubmititSlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher with a request check, cancel on interrupt and
    per-job failure records (see the module docstring)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None and self.hydra_context is not None
        try:
            check_request(self.params, _sinfo())
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)  # one line, exit code 2: a user mistake, nothing submitted
            sys.exit(2)

        acct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True)
        if acct.returncode != 0:
            log.warning(
                "sacct failed (%s): without SLURM accounting submitit cannot see that SLURM ended a job, "
                "and the sweep would wait for such a job forever",
                " ".join(acct.stderr.split())[:200],
            )
        # As the parent class does: executor from the launcher's params, one array for all jobs.
        init_keys = {"submitit_folder", "max_num_timeout"}
        executor = submitit.AutoExecutor(
            cluster=CLUSTER,
            folder=self.params["submitit_folder"],
            slurm_max_num_timeout=self.params.get("max_num_timeout", 0),
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{k if k in base else f"{CLUSTER}_{k}": v for k, v in self.params.items() if k not in init_keys}
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        args = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            # The arguments of the parent's __call__ (the job body each SLURM task runs); Hydra has no
            # other way to hand its singletons (config search path, plugins) to a new process.
            # tests/test_slurm.py fails loudly if that signature or get_state changes.
            args.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        # SIGTERM, like Ctrl-C, interrupts the wait below, which cancels the jobs (SIGKILL cannot:
        # hence the scancel command printed at submission).
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        jobs: list = []
        try:
            jobs = executor.map_array(self, *zip(*args))
            array_id = jobs[0].job_id.split("_")[0]
            log.info(
                f"submitted SLURM array {array_id} ({len(jobs)} jobs) into {sweep_dir}; "
                f"cancel it with: scancel {array_id}"
            )
            return self._wait(jobs, job_overrides, initial_job_idx)
        except KeyboardInterrupt:
            # scancel of a job that has ended is a no-op: cancel them all without asking sacct first.
            ids = [j.job_id for j in jobs]
            if ids:
                subprocess.call(["scancel", *ids])
            raise SystemExit(
                f"error: sweep interrupted; cancelled its SLURM jobs {' '.join(ids)}"
                if ids
                else "error: sweep interrupted while submitting; check `squeue --me`"
            ) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _wait(self, jobs: list, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        returns = []
        for idx, (job, overrides) in enumerate(zip(jobs, job_overrides), start=initial_job_idx):
            # Job.exception() waits, then returns (not raises) why a job failed or never completed.
            err = job.exception()
            returns.append(job.results()[0] if err is None else self._record_failure(job, list(overrides), idx, err))
        return returns

    def _record_failure(self, job: Any, overrides: list[str], idx: int, err: Exception) -> JobReturn:
        """failure.json (and, where the job never started, .hydra/overrides.yaml) in the job's dir;
        a JobReturn with no value, as a job that raised returns, so the sweep goes on."""
        assert self.config is not None and self.hydra_context is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config.hydra.job):
            sweep_config.hydra.job.num = idx
        job_dir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
        info = slurm_reason(job.job_id)
        state = info.get("state") or job.state
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = f" ({info['reason']})" if info.get("reason") and info["reason"] != "None" else ""
        error: str | None = f"SLURM job {job.job_id} ended without a result: {state}{reason}"
        value = None
        finished = job_result(job_dir)
        if finished is not None:  # it finished and was ended afterwards (e.g. in its epilog)
            error, value = None, finished.get("optimized_value")
        if error:
            if not (job_dir / ".hydra" / "overrides.yaml").exists():
                atomic_write_text(job_dir / ".hydra" / "overrides.yaml", yaml.safe_dump(overrides))
            atomic_write_json(
                job_dir / "failure.json",
                {
                    "error": error,
                    "state": state,
                    "slurm_job_id": job.job_id,
                    "sacct": info,
                    "traceback": message,
                    "log": str(job.paths.stderr),
                },
            )
            log.error("sweep job %d (%s): %s; log: %s", idx, " ".join(overrides), error, job.paths.stderr)
        ret = JobReturn(
            overrides=overrides,
            cfg=sweep_config,
            working_dir=str(job_dir),
            status=JobStatus.COMPLETED,
            task_name=str(sweep_config.hydra.job.name),
        )
        ret.return_value = value  # the public setter
        return ret


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
