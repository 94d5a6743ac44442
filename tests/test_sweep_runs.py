"""Real (tiny) multiruns: re-launching with other overrides, Ctrl-C, DDP inside a sweep."""

import json
import os
import signal
import subprocess
import sys
import time

import hydra
import pytest
import torch
import yaml

from dlfoundations.models import count_parameters
from dlfoundations.run.train import main
from tests.helpers import REPO, make_cfg

TINY = [
    "data.train_size=200",
    "data.test_size=100",
    "data.batch_size=50",
    "trainer.max_epochs=1",
    "print_config=false",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


def sweep_cli(args, tmp_path, **kwargs):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO / "src" / "train.py"),
            "-m",
            *TINY,
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.log_dir={tmp_path / 'logs'}",
            *args,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def results(job_dir):
    return json.loads((job_dir / "results.json").read_text())


def mlp_params(width, tmp_path):
    return count_parameters(hydra.utils.instantiate(make_cfg([f"model.width={width}"], tmp_path).model))


@pytest.mark.slow
def test_skip_finished_reuses_a_job_dir_only_for_the_same_overrides(tmp_path):
    sweep = tmp_path / "sweep"
    rc, out = finish(sweep_cli(["model.width=4,0,8", f"hydra.sweep.dir={sweep}"], tmp_path))
    assert rc != 0 and "1 of 3 sweep jobs failed" in out  # width 0 is refused
    width4 = (sweep / "0" / "results.json").stat().st_mtime_ns
    params = {w: mlp_params(w, tmp_path / "cfg") for w in (2, 4, 8)}
    assert results(sweep / "2")["num_params"] == params[8]

    rc, out = finish(sweep_cli(["model.width=4,8,2", f"hydra.sweep.dir={sweep}", "skip_finished=true"], tmp_path))
    assert rc == 0, out[-3000:]
    assert (sweep / "0" / "results.json").stat().st_mtime_ns == width4  # same overrides: not run again
    for job, width in ((0, 4), (1, 8), (2, 2)):
        saved = results(sweep / str(job))
        # Each folder agrees with itself: its overrides, its results' overrides, its parameter count.
        assert f"model.width={width}" in yaml.safe_load((sweep / str(job) / ".hydra" / "overrides.yaml").read_text())
        assert f"model.width={width}" in saved["overrides"] and "skip_finished=true" not in saved["overrides"]
        assert saved["num_params"] == params[width], f"job {job} (width {width})"
    rows = (sweep / "summary.csv").read_text().splitlines()
    assert len(rows) == 4 and not (sweep / "failed.txt").exists()  # the stale failure list is gone
    # What the first launch left in jobs 1 and 2 is kept, labelled, outside the job dirs.
    widths = set()
    for aside in (sweep / "superseded").iterdir():
        was = yaml.safe_load((aside / "why.txt").read_text())["these_files_are_of_overrides"]
        widths |= {o for o in was if o.startswith("model.width=")}
    assert widths == {"model.width=0", "model.width=8"}
    old_width8 = [d for d in (sweep / "superseded").iterdir() if (d / "results.json").exists()]
    assert len(old_width8) == 1 and results(old_width8[0])["num_params"] == params[8]


@pytest.mark.slow
def test_ctrl_c_during_a_sweep_still_summarizes_the_finished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    # Job 0 trains one epoch; job 1 would train for minutes: it is running when Ctrl-C comes.
    proc = sweep_cli(["trainer.max_epochs=1,100000", f"hydra.sweep.dir={sweep}"], tmp_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and not (sweep / "1" / ".hydra").exists():
        time.sleep(0.05)
    time.sleep(1.0)  # into job 1's training
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    rc, out = finish(proc, timeout=120)
    assert rc != 0, out[-3000:]
    assert "summarizing the jobs that finished" in out and "skip_finished=true" in out
    lines = (sweep / "summary.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("0,")  # job 0 only
    assert "job 1" in (sweep / "failed.txt").read_text()


DDP = [
    "trainer.precision=64-true",  # DDP and one process sum in other orders: compared in float64
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "speed.steps_per_call=1",
    "data.test_sets=[test,train_eval]",
]


@pytest.mark.slow
def test_ddp_inside_a_multirun_summarizes_once_and_matches_one_process(tmp_path):
    sweep = tmp_path / "sweep"
    rc, out = finish(sweep_cli([*DDP, "seed=0,1,2", f"hydra.sweep.dir={sweep}"], tmp_path))
    assert rc == 0, out[-3000:]
    assert (
        out.count("sweep summary: 3 finished") == 1
    )  # the DDP child (rank 1) runs the multirun too, but does not summarize
    assert "sync_dist" not in out  # the metrics are reduced exactly: no advice to reduce them again
    assert not (sweep / "failed.txt").exists()
    assert len((sweep / "summary.csv").read_text().splitlines()) == 4
    for job in range(3):
        assert results(sweep / str(job))["global_step"] == 2  # 1 epoch of 100 samples per rank, batches of 50
    # The epoch metrics of two ranks equal those of one process on the same data and weights.
    ddp = results(sweep / "0")["metrics"]
    single = main(
        make_cfg(
            [
                *TINY,
                f"paths.data_dir={tmp_path / 'data'}",
                "trainer=cpu",
                "trainer.precision=64-true",
                "train=false",
                f"weights={sweep / '0' / 'checkpoints' / 'last.ckpt'}",
                "data.test_sets=[test,train_eval]",
            ],
            tmp_path / "single",
        )
    )["metrics"]
    for name in ("test/acc", "test/loss", "train_eval/acc", "train_eval/loss"):
        assert abs(ddp[name] - single[name]) <= 1e-10, f"{name}: ddp {ddp[name]} vs one process {single[name]}"


@pytest.mark.slow
def test_ddp_spawn_records_the_real_epochs_and_steps(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "src" / "train.py"),
            *TINY,
            "trainer.max_epochs=2",
            "trainer=ddp",
            "trainer.strategy=ddp_spawn",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            # Lightning's CSVLogger cannot append the test metrics in a second spawn
            # (a crash on main too, reported separately): no logger here.
            "logger=none",
            "test=false",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        cwd=tmp_path,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    saved = results(run)
    assert saved["epochs"] == 2 and saved["global_step"] == 2 * 2  # 2 epochs x 2 batches of 50 per rank


@pytest.fixture(autouse=True)
def _no_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.mark.slow
def test_an_interrupted_sweep_job_resumes_from_its_last_checkpoint_exactly(tmp_path):
    sweep, reference = tmp_path / "sweep", tmp_path / "reference"
    grid = ["trainer.max_epochs=1,40", "data.train_size=400"]
    proc = sweep_cli([*grid, f"hydra.sweep.dir={sweep}"], tmp_path)
    deadline, last = time.monotonic() + 180, sweep / "1" / "checkpoints" / "last.ckpt"
    while time.monotonic() < deadline and proc.poll() is None:
        if last.exists() and torch.load(last, weights_only=True)["epoch"] >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    rc, out = finish(proc, timeout=120)
    assert rc != 0 and not (sweep / "1" / "results.json").exists(), out[-3000:]
    # The hint is the sweep's own relaunch command, not a single run writing elsewhere.
    assert f"hydra.sweep.dir={sweep} skip_finished=true" in out and " -m " in out, out[-3000:]

    rc, out = finish(sweep_cli([*grid, f"hydra.sweep.dir={sweep}", "skip_finished=true"], tmp_path))
    assert rc == 0, out[-3000:]
    assert "resuming this job from its own" in (sweep / "1" / "train.log").read_text()
    assert not (sweep / "superseded").exists()  # nothing of this job was thrown away
    rc, out = finish(sweep_cli([*grid, f"hydra.sweep.dir={reference}"], tmp_path))
    assert rc == 0, out[-3000:]
    resumed, whole = results(sweep / "1"), results(reference / "1")
    assert resumed["epochs"] == whole["epochs"] == 40
    assert resumed["metrics"] == whole["metrics"]  # same data order and RNG states: the same numbers


@pytest.mark.slow
def test_ctrl_c_of_a_local_parallel_sweep_is_one_line_then_the_summary(tmp_path):
    # Ctrl-C reaches the whole process group: the parent waiting in joblib and its workers.
    sweep = tmp_path / "sweep"
    proc = sweep_cli(
        ["hydra/launcher=local", "trainer.max_epochs=100000", "seed=0,1", f"hydra.sweep.dir={sweep}"],
        tmp_path,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and not list(sweep.glob("*/checkpoints/last.ckpt")):
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    rc, out = finish(proc, timeout=120)
    assert rc == 130 and "Traceback" not in out, out[-3000:]
    assert "error: interrupted (Ctrl-C); files written so far are kept" in out
    assert "summarizing the jobs that finished" in out and f"hydra.sweep.dir={sweep} skip_finished=true" in out
