"""One GPU per sweep job on one machine: a pool of lock files, one per (GPU, slot).

Jobs of a local parallel sweep (``hydra/launcher=local``) run in worker processes that joblib
reuses. A worker's first GPU job takes the first free slot, GPU-major (all GPUs' first slot before
any second slot), and, before CUDA starts, hides every other GPU from its process
(``CUDA_VISIBLE_DEVICES``): no job of that worker can create a CUDA context on another job's GPU.
Later jobs of the worker wait for a slot on the same GPU. A job holds its slot's lock for its
lifetime; the OS drops it when the process dies, so a crashed job never leaks its GPU.
``jobs_per_gpu`` > 1 packs jobs.
"""

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def slot_order(num_devices: int, jobs_per_device: int) -> list[tuple[int, int]]:
    """(device, slot) in the order jobs take them: spread over devices first, then pack."""
    return [(d, s) for s in range(jobs_per_device) for d in range(num_devices)]


@contextlib.contextmanager
def device_slot(
    lock_dir: str | Path,
    num_devices: int,
    jobs_per_device: int = 1,
    poll_seconds: float = 0.2,
    timeout_seconds: float | None = None,
    only: int | None = None,
) -> Iterator[int]:
    """Hold a free (device, slot) lock (on device ``only`` if given) for the ``with`` body and
    yield the device index."""
    if num_devices < 1 or jobs_per_device < 1:
        raise ValueError("need at least one device and one job per device")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        for device, slot in slot_order(num_devices, jobs_per_device):
            if only is not None and device != only:
                continue
            fd = os.open(lock_dir / f"device{device}.slot{slot}.lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()}\n".encode())
                yield device
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        if timeout_seconds is not None and time.monotonic() - start > timeout_seconds:
            raise TimeoutError(f"no free device slot in {lock_dir} after {timeout_seconds} s")
        time.sleep(poll_seconds)


# This process's GPU once a job has bound it: {"index": i among the GPUs the sweep saw, "count": n}.
_BOUND_GPU: dict[str, int] = {}


@contextlib.contextmanager
def isolated_gpu(
    lock_dir: str | Path, num_devices: int, jobs_per_device: int = 1, poll_seconds: float = 0.2
) -> Iterator[int]:
    """Hold a slot on this process's GPU for the ``with`` body; yield the index to train on (0:
    the process sees only its GPU). The first call of a process takes a free slot and sets
    ``CUDA_VISIBLE_DEVICES`` to that GPU before CUDA starts; later calls wait for a slot on it."""
    import torch

    bound = _BOUND_GPU.get("index")
    if bound is None and torch.cuda.is_initialized():
        raise RuntimeError(
            "CUDA was started in this sweep worker before it was given a GPU, so it may hold "
            "a context on another job's GPU; do not touch CUDA at import time"
        )
    with device_slot(lock_dir, _BOUND_GPU.get("count", num_devices), jobs_per_device, poll_seconds, only=bound) as gpu:
        if bound is None:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            ids = [v.strip() for v in visible.split(",")] if visible else [str(i) for i in range(num_devices)]
            os.environ["CUDA_VISIBLE_DEVICES"] = ids[gpu]
            _BOUND_GPU.update(index=gpu, count=num_devices)
            log.info("this worker (pid %d) uses GPU %s only", os.getpid(), ids[gpu])
        yield 0


def local_jobs(jobs_per_gpu: int, cpu_jobs: int | None) -> int:
    """How many jobs a local sweep runs at once: GPUs x jobs_per_gpu, or ``cpu_jobs`` (default:
    the number of cores) where there is no GPU."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        return gpus * jobs_per_gpu
    return cpu_jobs or os.cpu_count() or 1


def is_local_pool(target: str) -> bool:
    """Whether the launcher class ``target`` runs jobs in this machine's joblib worker pool
    (``hydra/launcher=local``, ``packed``): decided by its class's bases, by their qualified names,
    since Hydra's plugin scan re-executes plugin modules and so makes new class objects."""
    from hydra.utils import get_class

    try:
        bases = get_class(target).__mro__
    except Exception:  # not importable here: not the local pool
        return False
    return any(f"{c.__module__}.{c.__qualname__}" == JOBLIB_LAUNCHER for c in bases)


JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def slurm_cpus() -> int | None:
    """The CPUs SLURM gave this job (``SLURM_CPUS_PER_TASK``, else its CPU affinity); None outside SLURM."""
    if not os.environ.get("SLURM_JOB_ID"):
        return None
    given = os.environ.get("SLURM_CPUS_PER_TASK")
    return int(given) if given and given.isdigit() else len(os.sched_getaffinity(0))


@contextlib.contextmanager
def sweep_job_device(trainer_args: dict, jobs_per_gpu: int = 1, cpu_threads: int = 1) -> Iterator[None]:
    """Give a sweep job its share of the machine, whatever the launcher:

    - in a SLURM job, torch uses as many threads as the CPUs SLURM gave it (a cluster that does not
      pin jobs to their cores would otherwise run every job with all cores' threads);
    - in a job of the local parallel launcher, pin the job to a free GPU (``trainer_args`` get
      ``accelerator="gpu", devices=[i]``) or, without GPUs, use ``cpu_threads`` threads.
    A no-op for single runs outside SLURM."""
    import torch
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    cpus = slurm_cpus()
    if cpus:
        torch.set_num_threads(cpus)
        log.info("torch threads: %d (the CPUs SLURM gave this job)", cpus)
    if not HydraConfig.initialized():
        yield
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN or not is_local_pool(str(hydra_cfg.launcher.get("_target_", ""))):
        yield
        return
    # After this worker's first GPU job it sees one GPU: the pool's size is what it saw before.
    gpus = _BOUND_GPU.get("count") or (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if not gpus:
        torch.set_num_threads(cpu_threads)
        log.info("torch threads: %d (device_pool.cpu_threads of a local launcher's worker)", cpu_threads)
        yield
        return
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // (gpus * jobs_per_gpu)))  # this job's share
    with isolated_gpu(Path(hydra_cfg.sweep.dir) / ".device_locks", gpus, jobs_per_gpu) as gpu:
        trainer_args.update(accelerator="gpu", devices=[gpu])
        yield
