"""GPU isolation in local sweeps, with fake GPUs: each worker process sees only its GPU, keeps it
when reused for later jobs, and never shares it with a job running at the same time."""

import multiprocessing as mp
import os
import time

import pytest

from dlfoundations.devices import isolated_gpu


def _worker(lock_dir, jobs, hold, queue):
    """A reused sweep worker (as joblib's loky keeps them): several jobs in one process."""
    import torch

    for _ in range(jobs):
        with isolated_gpu(lock_dir, num_devices=2, jobs_per_device=1, poll_seconds=0.02) as index:
            start = time.monotonic()
            time.sleep(hold)
            queue.put(
                (
                    os.getpid(),
                    os.environ["CUDA_VISIBLE_DEVICES"],
                    index,
                    torch.cuda.is_initialized(),
                    start,
                    time.monotonic(),
                )
            )


@pytest.mark.slow
def test_reused_workers_keep_their_gpu_and_never_see_another(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")  # the sweep's GPUs: physical 5 and 7
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(tmp_path, 2, 0.3, queue)) for _ in range(3)]  # 3 workers, 2 GPUs
    for w in workers:
        w.start()
    records = [queue.get(timeout=120) for _ in range(6)]
    for w in workers:
        w.join(timeout=60)
    seen: dict[int, set[str]] = {}
    for pid, visible, index, cuda_started, *_ in records:
        seen.setdefault(pid, set()).add(visible)
        assert index == 0 and not cuda_started  # trains on its only visible GPU; CUDA not started by the pool
    assert len(seen) == 3 and all(len(v) == 1 for v in seen.values())  # one GPU per process, for all its jobs
    assert set().union(*seen.values()) == {"5", "7"}  # both GPUs used, no other
    for a in records:  # no two jobs on one GPU at the same time
        for b in records:
            if a is not b and a[1] == b[1]:
                assert a[5] <= b[4] or b[5] <= a[4], (a, b)
