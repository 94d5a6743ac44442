"""The GPU parts of the benchmarks are ready to run where a GPU is lent, and refuse in one line
(exit code 2, no traceback) where torch sees none."""

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.parametrize("module", ["benchmarks.packs", "benchmarks.replicas"])
def test_gpu_parts_refuse_in_one_line_without_cuda(module):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", module, "--part", "gpu"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert lines[-1].startswith(f"error: {module} --part gpu needs a CUDA device") and "Traceback" not in proc.stderr
