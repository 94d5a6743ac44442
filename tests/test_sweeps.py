"""Sweeps: the summary collector, the script, the device pool, launchers, failure containment."""

import json
import multiprocessing as mp
import subprocess
import sys
import time

import pytest
import torch
import yaml
from hydra import compose, initialize_config_module

from dlfoundations.devices import device_slot, slot_order
from dlfoundations.record.collect import collect
from dlfoundations.results.summary import log_summary_to_wandb, write_summary
from dlfoundations.tasks.schedules import InverseSqrtSteps
from tests.helpers import REPO


def fake_sweep(root, widths=(4, 16, 64), fail=(2,)):
    """A sweep dir as Hydra and dlfoundations leave it: jobs 0..n-1, one of them failed."""
    for i, width in enumerate(widths):
        job = root / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([f"model.width={width}", "data.label_noise=0.15"])
        )
        if i in fail:
            (job / "failure.json").write_text(json.dumps({"error": "RuntimeError: CUDA out of memory"}))
            continue
        metrics = {"test/acc": 0.5 + 0.01 * i, "train_eval/acc": 0.9, "test/loss": 1.0}
        (job / "results.json").write_text(json.dumps({"metrics": metrics, "num_params": 100 * width}))
    return root


def test_collector_reads_finished_jobs_and_names_the_failed_one(tmp_path):
    rows, failed = collect(fake_sweep(tmp_path))
    assert [r["job"] for r in rows] == ["0", "1"]
    assert rows[1]["model.width"] == "16" and rows[1]["num_params"] == 1600
    assert rows[1]["test/err"] == pytest.approx(1 - 0.51)
    assert failed == [
        {"job": "2", "overrides": "model.width=64 data.label_noise=0.15", "error": "RuntimeError: CUDA out of memory"}
    ]


def test_summary_files_cover_partial_sweeps(tmp_path):
    sweep = fake_sweep(tmp_path)
    (sweep / "3" / ".hydra").mkdir(parents=True)  # a job that never finished, without a trace
    (sweep / "3" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model.width=256"]))
    summary = write_summary(sweep, y=["test/err", "train_eval/err"])
    assert len(summary["rows"]) == 2 and [f["job"] for f in summary["failed"]] == ["2", "3"]
    lines = (sweep / "summary.csv").read_text().splitlines()
    assert len(lines) == 3 and "test/err" in lines[0]
    assert (sweep / "summary.png").read_bytes()[:4] == b"\x89PNG"
    failed = (sweep / "failed.txt").read_text()
    assert "job 2 (model.width=64" in failed and "CUDA out of memory" in failed and "job 3" in failed


@pytest.mark.slow
def test_summarize_script_on_a_sweep_dir(tmp_path):
    sweep = fake_sweep(tmp_path / "sweep")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "summarize_sweep.py"),
            str(sweep),
            "--y",
            "test/err",
            "--group-by",
            "data.label_noise",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 finished job(s)" in proc.stdout and "failed: job 2" in proc.stdout
    assert (sweep / "summary.png").exists()
    (sweep / "summary.png").unlink()
    only_report = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "summarize_sweep.py"), str(sweep), "--figures", "report"],
        capture_output=True,
        text=True,
    )
    assert only_report.returncode == 0, only_report.stderr
    assert not (sweep / "summary.png").exists()  # --figures: what is drawn, not what the runs named
    missing = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "summarize_sweep.py"), str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "not a directory" in missing.stderr


def _hold_slot(lock_dir, devices, per_device, hold, queue):
    with device_slot(lock_dir, devices, per_device, poll_seconds=0.02) as device:
        start = time.monotonic()
        time.sleep(hold)
        queue.put((device, start, time.monotonic()))


def _run_jobs(lock_dir, jobs, devices, per_device, hold=0.3):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_hold_slot, args=(lock_dir, devices, per_device, hold, queue)) for _ in range(jobs)]
    for p in procs:
        p.start()
    records = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return records


def _max_concurrent(records, device):
    events = sorted([(s, 1) for d, s, _ in records if d == device] + [(e, -1) for d, _, e in records if d == device])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


@pytest.mark.slow
def test_device_pool_gives_each_running_job_its_own_gpu(tmp_path):
    records = _run_jobs(tmp_path / "locks", jobs=6, devices=2, per_device=1)
    assert {d for d, _, _ in records} == {0, 1}  # both fake GPUs used
    assert _max_concurrent(records, 0) == 1 and _max_concurrent(records, 1) == 1  # never shared


@pytest.mark.slow
def test_device_pool_packs_only_when_asked(tmp_path):
    records = _run_jobs(tmp_path / "locks", jobs=4, devices=1, per_device=2)
    assert _max_concurrent(records, 0) == 2
    assert slot_order(2, 2) == [(0, 0), (1, 0), (0, 1), (1, 1)]  # spread over GPUs before packing


def test_launcher_configs_compose():
    with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
        local = compose(
            "train", overrides=["hydra/launcher=local", "experiment=double_descent"], return_hydra_config=True
        )
        slurm = compose(
            "train", overrides=["hydra/launcher=slurm", "experiment=double_descent_resnet"], return_hydra_config=True
        )
    expected = torch.cuda.device_count() if torch.cuda.is_available() else mp.cpu_count()
    assert "Joblib" in local.hydra.launcher._target_ and local.hydra.launcher.n_jobs == expected
    assert "Slurm" in slurm.hydra.launcher._target_
    assert slurm.hydra.launcher.gpus_per_node == 1 and slurm.hydra.launcher.tasks_per_node == 1
    assert slurm.hydra.sweeper.params["model.width"] == "range(1,65)"


def test_inverse_sqrt_schedule():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = InverseSqrtSteps(opt, every=512)
    lrs = []
    for _ in range(2049):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == lrs[511] == pytest.approx(0.1)
    assert lrs[512] == pytest.approx(0.1 / 2**0.5) and lrs[2048] == pytest.approx(0.1 / 5**0.5)


def test_summary_goes_to_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep = fake_sweep(tmp_path / "sweep_7")
    rows, _ = collect(sweep)
    write_summary(sweep)
    log_summary_to_wandb(sweep, rows, project="dlfoundations-test")
    runs = list((sweep / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
