"""SLURM launcher: request checks (always), and sweeps on a real cluster (marker ``slurm``).

The ``slurm`` tests need a running cluster: ``scripts/slurm_local.sh start`` (as root on Debian)
starts a one-node one; they find it through ``SLURM_CONF`` or the script's default folder, and are
skipped with the reason where there is none. ``.ci/run`` starts it and runs ``pytest -m slurm``.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from dlfoundations.errors import UserError
from dlfoundations.launch.slurm import check_request, parse_sinfo
from dlfoundations.run.train import main
from tests.helpers import REPO, make_cfg
from tests.study import check_study, run_search

SINFO = "debug*|localhost|2|24105|(null)\ngpu|g1|32|256000|gpu:a100:4(S:0-1)\n"
# A short MLP run (~1-2 s of training) whose every epoch is checkpointed.
RUN = [
    "experiment=memorize_cpu",
    "data.train_size=500",
    "data.val_size=100",
    "data.test_size=100",
    "model.width=64",
    "callbacks.stop_when_memorized=null",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.training_curves=null",
    "print_config=false",
]
TIMEOUT = 150  # seconds any one sweep may take on the test cluster before the test fails


def test_the_submitit_job_body_still_takes_the_arguments_our_launch_hands_it():
    # launch() hands each SLURM task the parent's __call__ arguments, Hydra's singletons included:
    # this fails, naming the change, when hydra-submitit-launcher or Hydra changes either.
    import inspect

    from hydra.core.singleton import Singleton

    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

    params = list(inspect.signature(BaseSubmititLauncher.__call__).parameters)
    assert params == ["self", "sweep_overrides", "job_dir_key", "job_num", "job_id", "singleton_state"]
    assert isinstance(Singleton.get_state(), dict)


def test_sinfo_parsing_counts_cpus_memory_and_gpus():
    nodes = parse_sinfo(SINFO)
    assert nodes[0] == {
        "partition": "debug",
        "default": True,
        "node": "localhost",
        "cpus": 2,
        "mem_mb": 24105,
        "gpus": 0,
    }
    assert nodes[1]["gpus"] == 4 and nodes[1]["partition"] == "gpu" and not nodes[1]["default"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"cpus_per_task": 8, "mem_gb": 1, "gpus_per_node": 0},
            "no node of partition debug has 8 CPU(s), 1 GB and 0 GPU",
        ),
        ({"cpus_per_task": 1, "mem_gb": 32, "gpus_per_node": 0}, "has 1 CPU(s), 32 GB"),
        (
            {"cpus_per_task": 1, "mem_gb": 1, "gpus_per_node": 1},
            "and 1 GPU(s) for one job (largest: 2 CPUs, 23 GB, 0 GPUs)",
        ),
        ({"partition": "nope"}, "hydra.launcher.partition=nope has no nodes"),
    ],
)
def test_requests_no_node_can_satisfy_are_refused(params, message):
    with pytest.raises(UserError, match=re.escape(message)):
        check_request(params, SINFO)


def test_requests_that_fit_name_their_partition():
    assert check_request({"cpus_per_task": 2, "mem_gb": 23, "gpus_per_node": 0}, SINFO) == "debug"
    assert check_request({"partition": "gpu", "cpus_per_task": 8, "mem_gb": 64, "gpus_per_node": 4}, SINFO) == "gpu"


# ---------------------------------------------------------------- on a real cluster (-m slurm)


def _cluster_skip_reason() -> str | None:
    if shutil.which("sinfo") is None:
        return "no SLURM here (sinfo not on PATH); start one with scripts/slurm_local.sh start"
    conf = os.environ.get("SLURM_CONF") or str(
        Path(os.environ.get("DLF_SLURM_DIR", Path(tempfile.gettempdir()) / "dlf-slurm")) / "slurm.conf"
    )
    env = {**os.environ, "SLURM_CONF": conf} if Path(conf).exists() else dict(os.environ)
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
    if proc.returncode != 0 or "idle" not in proc.stdout.split() and "mixed" not in proc.stdout.split():
        return f"no idle SLURM node (sinfo: {(proc.stderr or proc.stdout).strip()[:200]}); scripts/slurm_local.sh start"
    os.environ["SLURM_CONF"] = env.get("SLURM_CONF", "")  # the jobs' own sbatch/sacct/scontrol calls
    return None


@pytest.fixture
def one_thread():
    """In-process reference runs with the one torch thread of a slurm_cpu job: float sums depend
    on the number of threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cluster():
    reason = _cluster_skip_reason()
    if reason:
        pytest.skip(reason)


def _sweep(args, cwd, env=None):
    """``train.py -m`` in ``cwd`` (jobs run in the launch dir), CPU only, data in ``cwd``."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "DLF_DATA_DIR": str(cwd / "data"), **(env or {})}
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO / "src" / "train.py"),
            "-m",
            "hydra/launcher=slurm_cpu",
            *args,
            f"hydra.sweep.dir={cwd / 'sweep'}",
            f"paths.log_dir={cwd / 'logs'}",
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _array_id(proc) -> tuple[str, list[str]]:
    """Read the sweep's output until the launcher prints the array id; return it and the lines."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "submitted SLURM array" in line:
            return line.split("submitted SLURM array ")[1].split()[0], lines
    raise AssertionError("no array id printed:\n" + "".join(lines[-30:]))


def _finish(proc, lines) -> str:
    out, _ = proc.communicate(timeout=TIMEOUT)
    return "".join(lines) + out


def _restart_now(job: str, deadline: float) -> None:
    """SLURM holds a requeued job for about two minutes (BeginTime) before it may start again;
    start it at once, as a pre-empting job's end would, to keep the test short."""
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True).stdout
        if state.startswith("PENDING"):
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job} was not requeued")


def _epoch_checkpointed(job_dir: Path, epoch: int, deadline: float) -> bool:
    last = job_dir / "checkpoints" / "last.ckpt"
    while time.monotonic() < deadline:
        if last.exists():
            try:
                if torch.load(last, weights_only=True, map_location="cpu")["epoch"] >= epoch:
                    return True
            except (RuntimeError, EOFError, KeyError):
                pass  # being replaced right now
        time.sleep(0.1)
    return False


@pytest.mark.slurm
def test_sweep_on_slurm_matches_local_runs_and_limits_threads(cluster, one_thread, tmp_path):
    proc = _sweep([*RUN, "trainer.max_epochs=3", "seed=0,1"], tmp_path)
    array, lines = _array_id(proc)
    out = _finish(proc, lines)
    assert proc.returncode == 0, out[-3000:]
    assert f"cancel it with: scancel {array}" in out
    for job, seed in (("0", 0), ("1", 1)):
        results = json.loads((tmp_path / "sweep" / job / "results.json").read_text())
        local = main(
            make_cfg([*RUN, "trainer.max_epochs=3", f"seed={seed}"], tmp_path / f"local{seed}", tmp_path / "data")
        )
        assert results["metrics"] == local["metrics"]  # same numbers on the cluster as in-process
        # slurm_cpu gives each job one core: torch uses one thread.
        assert "torch threads: 1 (the CPUs SLURM gave this job)" in (tmp_path / "sweep" / job / "train.log").read_text()
    assert len((tmp_path / "sweep" / "summary.csv").read_text().splitlines()) == 3


@pytest.mark.slurm
def test_scancel_of_one_job_is_recorded_and_skip_finished_reruns_it(cluster, tmp_path):
    # Job 1 trains long enough (100 epochs, a few seconds) to be cancelled while it runs.
    args = [*RUN, "trainer.max_epochs=100", "data.train_size=1000", "data.label_noise=0.5,1.0"]
    proc = _sweep(args, tmp_path)
    array, lines = _array_id(proc)
    assert _epoch_checkpointed(tmp_path / "sweep" / "1", 1, time.monotonic() + 60), "job 1 never started"
    subprocess.run(["scancel", f"{array}_1"], check=True)
    out = _finish(proc, lines)
    assert proc.returncode == 1, out[-3000:]  # the multirun says that a job failed
    assert "Traceback" not in out
    failure = json.loads((tmp_path / "sweep" / "1" / "failure.json").read_text())
    assert failure["state"].startswith("CANCELLED") and failure["slurm_job_id"] == f"{array}_1"
    assert (tmp_path / "sweep" / "0" / "results.json").exists()
    failed = (tmp_path / "sweep" / "failed.txt").read_text()
    assert failed.startswith("job 1 (") and f"SLURM job {array}_1 ended without a result: CANCELLED" in failed
    assert len((tmp_path / "sweep" / "summary.csv").read_text().splitlines()) == 2  # header + job 0

    # Completing the sweep: job 0 is not run again, job 1 is.
    finished = (tmp_path / "sweep" / "0" / "results.json").stat().st_mtime_ns
    proc = _sweep([*args, "skip_finished=true"], tmp_path)
    out = _finish(proc, [])
    assert proc.returncode == 0, out[-3000:]
    assert (tmp_path / "sweep" / "0" / "results.json").stat().st_mtime_ns == finished
    assert (tmp_path / "sweep" / "1" / "results.json").exists()
    assert len((tmp_path / "sweep" / "summary.csv").read_text().splitlines()) == 3


@pytest.mark.slurm
def test_requeued_jobs_resume_and_match_uninterrupted_runs(cluster, one_thread, tmp_path):
    # Job 0 is pre-empted (`scontrol requeue`: SLURM kills and restarts it); job 1 gets the signal
    # that announces its time limit (SIGUSR2: submitit requeues it). Both resume from last.ckpt.
    # A 2-minute limit makes submitit count the signal as a time limit, not a pre-emption.
    run = [*RUN, "trainer.max_epochs=30", "data.train_size=2000", "model.width=128"]
    proc = _sweep([*run, "seed=0,1", "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=1"], tmp_path)
    array, lines = _array_id(proc)
    deadline = time.monotonic() + 90
    assert _epoch_checkpointed(tmp_path / "sweep" / "0", 2, deadline), "job 0 never started"
    subprocess.run(["scontrol", "requeue", f"{array}_0"], check=True)
    assert _epoch_checkpointed(tmp_path / "sweep" / "1", 2, deadline), "job 1 never started"
    subprocess.run(["scancel", "--signal=USR2", f"{array}_1"], check=True)
    _restart_now(f"{array}_0", deadline)
    _restart_now(f"{array}_1", deadline)
    out = _finish(proc, lines)
    assert proc.returncode == 0, out[-3000:]
    submitit_log = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").glob(f"{array}_1/*log.err"))
    assert "Caught signal SIGUSR2" in submitit_log and "this job is timed-out" in submitit_log
    for job, seed in (("0", 0), ("1", 1)):
        log = (tmp_path / "sweep" / job / "train.log").read_text()
        assert "SLURM restarted this job (1 time(s)): resuming from" in log, log[-2000:]
        results = json.loads((tmp_path / "sweep" / job / "results.json").read_text())
        reference = main(make_cfg([*run, f"seed={seed}"], tmp_path / f"reference{seed}", tmp_path / "data"))
        assert results["epochs"] == 30 and results["metrics"] == reference["metrics"]


@pytest.mark.slurm
def test_impossible_request_fails_before_submission(cluster, tmp_path):
    before = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    proc = _sweep([*RUN, "hydra.launcher.cpus_per_task=512", "seed=0,1"], tmp_path)
    out = _finish(proc, [])
    assert proc.returncode == 2, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no node of partition" in errors[0] and "512 CPU(s)" in errors[0]
    assert subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout == before


@pytest.mark.slurm
def test_stopping_the_sweep_process_cancels_its_jobs(cluster, tmp_path):
    proc = _sweep([*RUN, "trainer.max_epochs=100000", "seed=0,1"], tmp_path)
    array, lines = _array_id(proc)
    proc.send_signal(signal.SIGTERM)
    out = _finish(proc, lines)
    assert proc.returncode == 1 and f"error: sweep interrupted; cancelled its SLURM jobs {array}_0 {array}_1" in out, (
        out
    )
    deadline, states = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        states = subprocess.run(
            ["sacct", "-j", array, "-X", "-n", "-P", "-o", "State"], capture_output=True, text=True
        ).stdout.splitlines()
        if states and all(s.startswith("CANCELLED") for s in states):
            break
        time.sleep(0.5)
    assert states and all(s.startswith("CANCELLED") for s in states), states


@pytest.mark.slurm
def test_optuna_search_on_slurm(cluster, tmp_path):
    proc = run_search(tmp_path, "hydra/launcher=slurm_cpu")
    assert proc.returncode == 1, proc.stderr[-3000:]  # failed trials make the multirun exit 1
    assert (proc.stdout + proc.stderr).count("submitted SLURM array") == 2  # 4 trials in batches of n_jobs=2
    check_study(tmp_path / "sweep", trials=4)
