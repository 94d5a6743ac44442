"""GPU paths, run whenever a CUDA device is present (the `gpu` marker; skipped, with the reason,
where there is none): training on the GPU with the data kept there, bf16-mixed, torch.compile,
the local launcher's one-GPU-per-job pool and replicas."""

import json
import math
import subprocess
import sys

import pytest
import torch

from dlfoundations.run.train import main
from tests.helpers import MLP, REPO, make_cfg

pytestmark = pytest.mark.gpu
EXACT = ["speed.matmul_precision=highest"]  # no TF32: GPU and CPU fp32 agree to rounding


def _run(overrides, out):
    return main(make_cfg([*MLP, *EXACT, *overrides], out))


def test_gpu_run_keeps_the_data_on_the_device_and_matches_cpu(tmp_path):
    cpu = _run(["trainer=cpu"], tmp_path / "cpu")
    gpu = _run(["trainer.gpus=1"], tmp_path / "gpu")
    assert gpu["global_step"] == cpu["global_step"] > 0
    gap = abs(gpu["metrics"]["train/loss"] - cpu["metrics"]["train/loss"])
    assert gap <= 1e-3, f"train/loss GPU vs CPU differs by {gap} (bound 1e-3)"


def test_bf16_mixed_on_the_gpu_lands_close_to_fp32(tmp_path):
    fp32 = _run(["trainer.gpus=1"], tmp_path / "fp32")
    bf16 = _run(["trainer.gpus=1", "trainer.precision=bf16-mixed"], tmp_path / "bf16")
    gap = abs(bf16["metrics"]["train/loss"] - fp32["metrics"]["train/loss"])
    assert math.isfinite(bf16["metrics"]["train/loss"]) and gap <= 0.05, f"bf16 vs fp32 train/loss gap {gap} > 0.05"


def test_compile_on_the_gpu_keeps_keys_and_lands_close(tmp_path):
    eager = _run(["trainer.gpus=1"], tmp_path / "eager")
    compiled = _run(["trainer.gpus=1", "speed.compile=true"], tmp_path / "compiled")
    keys = [
        list(torch.load(tmp_path / d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])
        for d in ("eager", "compiled")
    ]
    assert keys[0] == keys[1]  # no _orig_mod. prefix
    gap = abs(compiled["metrics"]["train/loss"] - eager["metrics"]["train/loss"])
    assert gap <= 1e-3, f"compiled vs eager train/loss gap {gap} > 1e-3"


def test_local_sweep_runs_each_job_on_a_gpu(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "src/train.py",
            "-m",
            "hydra/launcher=local",
            "experiment=double_descent",
            "model.width=8,16",
            "trainer.max_epochs=3",
            "trainer.gpus=1",
            f"hydra.sweep.dir={tmp_path}/sweep",
            f"paths.log_dir={tmp_path}/logs",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted((tmp_path / "sweep").glob("*/results.json"))
    assert len(results) == 2
    assert all(json.loads(p.read_text())["global_step"] == 3 * 40 for p in results)


def test_replicas_on_the_gpu_train_their_separate_runs(tmp_path):
    stacked = _run(["trainer.gpus=1", "seed=3", "replicas=2"], tmp_path / "stacked")
    assert stacked["optimized_value"] is not None
    for k in range(2):
        alone = _run(["trainer.gpus=1", f"seed={3 + k}"], tmp_path / f"alone{k}")
        replica = json.loads((tmp_path / "stacked" / f"replica_{k}" / "results.json").read_text())
        assert replica["seed"] == alone["seed"] and replica["global_step"] == alone["global_step"] > 0
        for name, value in alone["metrics"].items():
            gap = abs(replica["metrics"][name] - value)
            assert gap <= 1e-4, f"replica {k} {name} differs from its separate GPU run by {gap} (bound 1e-4)"
