"""Reliability: determinism, resume after SIGKILL, completing sweeps, clear errors, divergence."""

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlfoundations.config.checks import validate
from dlfoundations.config.objects import instantiate
from dlfoundations.config.preflight import preflight
from dlfoundations.errors import UserError
from dlfoundations.models import MLP
from dlfoundations.run.checkpoints import check_checkpoint, load_weights
from dlfoundations.run.train import main
from tests.helpers import REPO, make_cfg

MLP_RUN = [
    "experiment=memorize_cpu",
    "data.train_size=500",
    "data.val_size=100",
    "data.test_size=100",
    "model.width=128",
    "callbacks.stop_when_memorized=null",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]
CNN_RUN = [
    "data=mnist_bundled",
    "data.train_size=300",
    "data.test_size=100",
    "model=alexnet",
    "model.width=0.0625",
    "trainer.max_epochs=2",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


@pytest.mark.parametrize("run", [MLP_RUN + ["trainer.max_epochs=3"], CNN_RUN], ids=["mlp", "cnn"])
def test_same_seed_gives_bit_identical_metrics(run, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        main(make_cfg([*run, f"seed={seed}"], tmp_path / name))
    a, b, c = ((tmp_path / n / "metrics.csv").read_bytes() for n in "abc")
    assert a == b
    assert a != c


def cli(args, cwd, **kwargs):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(
        [sys.executable, str(REPO / "src" / "train.py"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    # ~0.3 s per epoch, so that the kill lands mid-run.
    run = [
        *MLP_RUN,
        "data.train_size=3000",
        "model.width=256",
        "trainer.max_epochs=12",
        "data.label_noise=0.5",
        "print_config=false",
    ]
    reference = main(make_cfg(run, tmp_path / "reference"))["metrics"]

    # A real crash: SIGKILL the training process once it has checkpointed epoch 3 or later.
    logs = tmp_path / "logs"
    proc = cli([*run, f"paths.log_dir={logs}"], tmp_path)
    deadline, killed_at = time.monotonic() + 240, None
    while time.monotonic() < deadline and proc.poll() is None:
        last = list(logs.glob("memorize_cpu/runs/*/checkpoints/last.ckpt"))
        if last:
            epoch = torch.load(last[0], weights_only=True, map_location="cpu")["epoch"]
            if epoch >= 3:
                proc.send_signal(signal.SIGKILL)
                killed_at = epoch
                break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert killed_at is not None and proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    (crashed,) = logs.glob("memorize_cpu/runs/*")
    assert not (crashed / "results.json").exists() and (crashed / "metrics.csv").exists()

    # The documented resume command: same config, ckpt_path=last.
    resumed = main(_with_log_dir(make_cfg([*run, "ckpt_path=last"], tmp_path / "resumed"), logs))
    assert killed_at < 11 and resumed["epochs"] == 12
    assert "train/acc" in resumed["metrics"]  # it trained the remaining epochs
    assert resumed["metrics"] == reference  # same data order, same noisy labels, same numbers


def _with_log_dir(cfg, log_dir: Path):
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.paths.log_dir = str(log_dir)
    return cfg


@pytest.mark.slow
def test_relaunching_a_sweep_with_skip_finished_completes_it(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "experiment=memorize_cpu", "data.label_noise=0,1.0", "debug=fast", f"hydra.sweep.dir={sweep}"]
    first = cli(args, tmp_path)
    first.wait(timeout=300)
    assert first.returncode == 0, first.stderr.read()[-2000:]
    finished = (sweep / "0" / "results.json").stat().st_mtime_ns
    (sweep / "1" / "results.json").unlink()  # as if job 1 had crashed
    second = cli([*args, "skip_finished=true"], tmp_path)
    second.wait(timeout=300)
    assert second.returncode == 0, second.stderr.read()[-2000:]
    assert (sweep / "0" / "results.json").stat().st_mtime_ns == finished  # not run again
    assert (sweep / "1" / "results.json").exists()  # run again
    assert len((sweep / "summary.csv").read_text().splitlines()) == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # ranges: checked by the constructors (data, model, optimizer) or, for root keys, by validate
        ("data.label_noise=1.5", r"^data.label_noise=1.5 is out of range; use a value in \[0, 1\]$"),
        ("model.width=0", r"^model: model.width .*must be >= 1"),
        ("optimizer.lr=-1", r"^optimizer: Invalid learning rate: -1.0$"),
        ("seed=-1", r"^seed=-1 is out of range; use a value >= 0 and < 2\*\*32$"),
    ],
)
def test_bad_values_are_one_line_errors(override, message, tmp_path):
    cfg = make_cfg(["experiment=memorize_cpu", "model=mlp", override], tmp_path)
    with pytest.raises(UserError, match=message) as err:
        validate(cfg)
        preflight(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_cli_errors_are_one_line_without_traceback(tmp_path):
    cases = {
        (
            "experiment=memorize_cpu",
            "data.label_noise=1.5",
        ): "error: data.label_noise=1.5 is out of range; use a value in [0, 1]",
        ("model=resnet50",): "error: model=resnet50 is not among the model options; did you mean resnet18? (alexnet, ",
        (
            "experiment=memorise",
        ): "error: experiment=memorise is not among the experiment options; did you mean memorize? (",
        (
            "trainer.max_epoch=3",
        ): "error: trainer.max_epoch is not a config key; did you mean max_epochs? valid keys in trainer: ",
        ("optimizer.lrr=0.1",): "error: optimizer.lrr is not a config key; did you mean lr? valid keys in optimizer: ",
        ("+modle=cnn1d",): "error: modle is no key of this config (it would do nothing); did you mean model?",
    }
    for i in range(len(cases)):
        (tmp_path / str(i)).mkdir()
    procs = {args: cli(list(args), tmp_path / str(i)) for i, args in enumerate(cases)}
    for args, proc in procs.items():
        proc.wait(timeout=300)
        err = proc.stderr.read()
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 2 and "Traceback" not in err, (args, err[-2000:])
        assert len(lines) == 1 and lines[0].startswith(cases[args]), (args, err[-2000:])


def test_divergence_stops_with_epoch_and_steps_and_keeps_the_run_dir(tmp_path):
    with pytest.raises(
        UserError, match=r"diverged: the loss became NaN/inf in epoch 0 \(optimizer steps 0-\d+\); lower optimizer.lr"
    ):
        main(make_cfg([*MLP_RUN, "optimizer=sgd", "optimizer.lr=1e6", "trainer.max_epochs=3"], tmp_path))
    assert (tmp_path / "config.yaml").exists()
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()  # no diverged model saved as "last"


def test_checkpoint_and_weights_from_another_model_are_refused(tmp_path):
    results = main(make_cfg([*MLP_RUN, "trainer.max_epochs=1"], tmp_path))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert results["epochs"] == 1 and ckpt.exists()
    torch.load(ckpt, weights_only=True)  # loads without unpickling arbitrary objects
    other = MLP(in_features=40, width=64)
    with pytest.raises(UserError, match=r"weights=.* does not fit the configured model MLP \(other shapes for"):
        load_weights(other, str(ckpt))
    task = torch.nn.Module()
    task.net = other
    with pytest.raises(UserError, match=r"ckpt_path=.* was saved from another model"):
        check_checkpoint(str(ckpt), task)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable weights-only torch file"):
        load_weights(other, str(garbage))


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    from dlfoundations.run.checkpoints import AtomicCheckpointIO

    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"a": torch.zeros(3)}, target)
    before = target.read_bytes()

    def crash(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"a": torch.ones(3)}, target)
    assert target.read_bytes() == before  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_get_the_permissions_the_umask_gives(umask, tmp_path):
    from dlfoundations.atomic import atomic_write_text, current_umask

    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        assert os.umask(umask) == umask  # reading it left it as it was
        atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask
        if umask == 0o002:  # a whole run: results, config, checkpoints, plots readable by the group
            main(
                make_cfg(
                    [*MLP_RUN, "trainer.max_epochs=1", "callbacks.training_curves.metrics=[train/acc]"],
                    tmp_path / "run",
                )
            )
            run = tmp_path / "run"
            written = [
                "results.json",
                "config.yaml",
                "config_tree.log",
                "checkpoints/last.ckpt",
                "curves.png",
                "metrics.csv",
            ]
            modes = {name: oct((run / name).stat().st_mode & 0o777) for name in written}
            assert modes == {name: oct(0o664) for name in written}
    finally:
        os.umask(previous)


@pytest.mark.slow
def test_ctrl_c_prints_the_resume_command_and_keeps_the_run(tmp_path):
    run = [*MLP_RUN, "model.width=32", "trainer.max_epochs=60", "print_config=false", "data.label_noise=0.5"]
    logs = tmp_path / "logs"
    proc = cli([*run, f"paths.log_dir={logs}"], tmp_path)
    deadline, interrupted_at = time.monotonic() + 240, None
    while time.monotonic() < deadline and proc.poll() is None:
        last = list(logs.glob("memorize_cpu/runs/*/checkpoints/last.ckpt"))
        if last:
            proc.send_signal(signal.SIGINT)
            interrupted_at = torch.load(last[0], weights_only=True, map_location="cpu")["epoch"]
            break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=120)
    assert interrupted_at is not None, f"the run ended before Ctrl-C: {err[-2000:]}"
    assert proc.returncode != 0 and "Traceback" not in err
    (first,) = logs.glob("memorize_cpu/runs/*")
    for name in ("config.yaml", "metrics.csv", "checkpoints/last.ckpt"):  # everything written stays
        assert (first / name).exists(), name
    assert not (first / "results.json").exists()
    lines = err.splitlines()
    command = lines[lines.index(next(line for line in lines if line.endswith("Resume with:"))) + 1]
    last_ckpt = (first / "checkpoints" / "last.ckpt").resolve()
    assert command.endswith(f" ckpt_path={last_ckpt}")
    saved_epoch = torch.load(last_ckpt, weights_only=True, map_location="cpu")["epoch"]
    assert 0 <= interrupted_at <= saved_epoch < 59  # interrupted mid-run

    import shlex

    resumed = subprocess.run(
        shlex.split(command),
        cwd=tmp_path,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (second,) = set(logs.glob("memorize_cpu/runs/*")) - {first}
    results = json.loads((second / "results.json").read_text())
    assert results["epochs"] == 60  # it ran to the end of the original run
    import csv

    epochs = {int(row["epoch"]) for row in csv.DictReader((second / "metrics.csv").open()) if row.get("epoch")}
    assert min(epochs) == saved_epoch + 1  # it continued after the checkpoint's epoch, not from 0


def test_nonfinite_test_metrics_are_flagged(tmp_path, caplog):
    cfg = make_cfg([*MLP_RUN, "train=false"], tmp_path / "run")
    net = instantiate(cfg.model, "model")
    with torch.no_grad():
        net.net[-1].bias.fill_(float("inf"))  # every logit inf: the loss is NaN
    weights = tmp_path / "weights.pt"
    torch.save(net.state_dict(), weights)
    with caplog.at_level(logging.WARNING):
        results = main(make_cfg([*MLP_RUN, "train=false", f"weights={weights}"], tmp_path / "run"))
    assert results["nonfinite_metrics"] == ["test/loss"]
    assert not math.isfinite(results["metrics"]["test/loss"])
    assert json.loads((tmp_path / "run" / "results.json").read_text())["nonfinite_metrics"] == ["test/loss"]
    assert any("non-finite metrics (NaN/inf): test/loss" in r.getMessage() for r in caplog.records)
