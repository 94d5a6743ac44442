"""replicas=R trains seeds seed..seed+R-1 stacked in one process, each exactly its separate run:
same final weights and every logged metric (in float64, within 1e-10: the same algorithm, not
just close numbers), per-replica results that sweep
summaries read as seeds, exact resume, and one-line refusals of what would couple replicas."""

import copy
import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from dlfoundations.errors import UserError
from dlfoundations.record.collect import collect
from dlfoundations.replicas.nets import StackedMLP, StackedNet, stack_nets
from dlfoundations.replicas.training import clip_norm_per_replica
from dlfoundations.results.aggregate import write_aggregate
from dlfoundations.run.train import main
from tests.helpers import CIFAR, MLP, REPO, make_cfg

# Float64 (trainer.precision=64-true): stacked and separate kernels still round differently, but
# at 1e-16, which these few steps cannot grow to 1e-10; in float32 the same runs differ by up to
# 4e-4 on some CPUs (BN training amplifies rounding), which says nothing about the algorithm.
ATOL = 1e-10
F64 = "trainer.precision=64-true"
SETUPS = {
    # label noise 0.2 drawn per seed, step scheduler, momentum and weight decay (no decay on biases)
    "mlp_sgd_momentum_wd_noise": [*MLP, "optimizer.momentum=0.9", "optimizer.weight_decay=1e-3"],
    "mlp_adam_clipped": [*MLP, "optimizer=adam", "optimizer.lr=0.01", "task.gradient_clip_val=0.5"],
    # CNN-k with BN (stacked statistics) and per-seed flips. Stacked and separate convolutions
    # round differently (1e-7); three things turn that into more than 1e-5, in plain PyTorch as
    # much as here: lr 0.1 on these random images (BN training is chaotic: differences grow 10x
    # every 3 steps), a max-pool tie (two inputs within rounding of each other route a gradient to
    # another pixel), and the zero bands of padded random crops, whose constant activations after
    # BN are such near-ties on some CPUs (an AMD EPYC: exact for 6 steps, then 7e-5 in one step;
    # ResNet18-k too). This setup (lr 0.01, constant, flips without crops) has none of them in its
    # 20 steps; that crops reach each replica as in its own run is the stacked-loader test's.
    "cnn_batchnorm_flip": [
        *(o for o in CIFAR if not o.startswith("scheduler")),
        "optimizer.lr=0.01",
        "data.crop_padding=0",
    ],
    "mnist1d_cnn": [*MLP, "model=cnn1d", "model.width=8"],
}


def _run(overrides, out, data_root=None):
    results = main(make_cfg(overrides, out, data_root))
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return results, state


@pytest.mark.parametrize("setup", list(SETUPS))
def test_replicas_train_exactly_their_separate_runs(setup, tmp_path, data_root, cifar_files_accepted):
    overrides, seed, replicas = [*SETUPS[setup], F64], 3, 2
    stacked, stacked_state = _run([*overrides, f"seed={seed}", f"replicas={replicas}"], tmp_path / "stacked", data_root)
    assert stacked["optimized_value"] is not None
    for k in range(replicas):
        alone, alone_state = _run([*overrides, f"seed={seed + k}"], tmp_path / f"seed{seed + k}", data_root)
        replica = json.loads((tmp_path / "stacked" / f"replica_{k}" / "results.json").read_text())
        assert replica["seed"] == alone["seed"] == seed + k
        assert replica["num_params"] == alone["num_params"]
        assert (replica["epochs"], replica["global_step"]) == (alone["epochs"], alone["global_step"])
        assert set(replica["metrics"]) == set(alone["metrics"])
        for name, value in alone["metrics"].items():
            assert abs(replica["metrics"][name] - value) <= ATOL, (
                f"{name}: replica {k} {replica['metrics'][name]} vs {value}"
            )
        diffs = {
            key: (stacked_state["net.stacked." + key.removeprefix("net.")][k].double() - value.double())
            .abs()
            .max()
            .item()
            for key, value in alone_state.items()
        }
        worst = max(diffs, key=lambda key: diffs[key])
        assert diffs[worst] <= ATOL, f"replica {k}: max abs weight difference {diffs[worst]} ({worst}) > {ATOL}"
    # The replicas are different runs (another seed: another init, data order and label noise).
    a, b = (json.loads((tmp_path / "stacked" / f"replica_{k}" / "results.json").read_text()) for k in range(2))
    assert a["metrics"]["train/loss"] != b["metrics"]["train/loss"]


def test_mlp_uses_batched_matrix_products_and_other_nets_vmap():
    from dlfoundations.models import CNN
    from dlfoundations.models import MLP as MLPNet

    assert type(stack_nets([MLPNet(40, width=8), MLPNet(40, width=8)])) is StackedMLP
    assert type(stack_nets([CNN(width=4), CNN(width=4)])) is StackedNet
    with pytest.raises(ValueError, match="one architecture"):
        StackedNet([MLPNet(40, width=8), CNN(width=4)])


def test_dropout_masks_differ_between_replicas():
    torch.manual_seed(0)
    template = nn.Sequential(nn.Linear(10, 64), nn.Dropout(0.5), nn.Linear(64, 3))
    stacked = stack_nets([template, template, template])  # three replicas with the same weights
    x = torch.randn(1, 32, 10).expand(3, 32, 10)
    out = stacked.train()(x)
    assert (out[0] - out[1]).abs().max().item() > 1e-3 and (out[1] - out[2]).abs().max().item() > 1e-3
    evaluated = stacked.eval()(x)
    assert (evaluated[0] - evaluated[1]).abs().max().item() <= 1e-6  # no dropout in eval mode: equal


def test_gradient_norm_clipping_is_per_replica():
    grads = [torch.tensor([[3.0, 0.0], [0.3, 0.0]]), torch.tensor([[4.0], [0.4]])]  # norms 5 and 0.5
    params = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norms = clip_norm_per_replica(params, max_norm=1.0)
    assert norms.tolist() == pytest.approx([5.0, 0.5])
    clipped = torch.cat([p.grad[0].flatten() for p in params])  # replica 0 scaled to norm 1, replica 1 kept
    assert torch.linalg.vector_norm(clipped).item() == pytest.approx(1.0, abs=1e-5)
    assert all(torch.equal(p.grad[1], g[1]) for p, g in zip(params, grads))  # norm 0.5 <= 1: untouched


def test_resumed_replicated_run_equals_uninterrupted(tmp_path):
    overrides = [*MLP, "replicas=3", "optimizer.momentum=0.9", F64]
    whole, whole_state = _run([*overrides, "trainer.max_epochs=4"], tmp_path / "whole")
    _run([*overrides, "trainer.max_epochs=2"], tmp_path / "part")
    ckpt = tmp_path / "part" / "checkpoints" / "last.ckpt"
    resumed, resumed_state = _run([*overrides, "trainer.max_epochs=4", f"ckpt_path={ckpt}"], tmp_path / "resumed")
    assert resumed["global_step"] == whole["global_step"] > 0
    diff = max((whole_state[k].double() - resumed_state[k].double()).abs().max().item() for k in whole_state)
    assert diff <= ATOL, f"max abs weight difference {diff} > {ATOL}"
    for k in range(3):
        one, two = (
            json.loads((d / f"replica_{k}" / "results.json").read_text())
            for d in (tmp_path / "whole", tmp_path / "resumed")
        )
        for name, value in one["metrics"].items():
            assert abs(two["metrics"][name] - value) <= ATOL, name


def test_sweep_summary_reads_replicas_as_seeds(tmp_path):
    sweep = tmp_path / "sweep"
    for job, width in enumerate((8, 16)):
        out = sweep / str(job)
        (out / ".hydra").mkdir(parents=True)
        (out / ".hydra" / "overrides.yaml").write_text(f"- model.width={width}\n- replicas=3\n")
        main(make_cfg([*MLP, f"model.width={width}", "replicas=3", "callbacks.model_checkpoint=null"], out))
    rows, failed = collect(sweep)
    assert not failed
    assert [(r["job"], r["seed"]) for r in rows] == [(f"{j}/replica_{k}", str(k)) for j in (0, 1) for k in range(3)]
    agg, keys = write_aggregate(sweep, rows)
    assert keys == ["model.width"] and [a["count"] for a in agg] == [3, 3]
    by_width = {a["model.width"]: a for a in agg}
    losses = [r["test/loss"] for r in rows if r["model.width"] == "8"]
    assert by_width["8"]["test/loss"] == pytest.approx(sum(losses) / 3, abs=1e-12)
    assert by_width["8"]["test/loss.std"] > 0  # three seeds, three different results


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["scheduler=plateau"], r"replicas=2: ReduceLROnPlateau .* use replicas=1"),
        (["optimizer._target_=torch.optim.LBFGS"], r"replicas=2: optimizer torch.optim.LBFGS is not known"),
        (
            [
                "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
                "+callbacks.stop.monitor=train/loss",
            ],
            r"callbacks.stop \(lightning.pytorch.callbacks.EarlyStopping\) acts on one model; set callbacks.stop=null",
        ),
        (["callbacks.model_checkpoint.monitor=train/loss"], r"monitor=train/loss would pick the best epoch"),
        (["replicas=0"], r"replicas=0 must be an integer >= 1"),
        (["trainer.precision=16-mixed"], r"trainer.precision=16-mixed scales one loss for all replicas"),
    ],
)
def test_what_would_couple_replicas_is_refused_in_one_line(extra, message, tmp_path):
    with pytest.raises(UserError, match=message) as err:
        main(make_cfg([*(o for o in MLP if not o.startswith("scheduler")), "replicas=2", *extra], tmp_path))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "replicas.json").exists()


def _eval(args, cwd):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, str(REPO / "src" / "eval.py"), *args, "print_config=false", f"paths.log_dir={cwd}"]
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    out = max((cwd / "eval" / "runs").iterdir(), key=lambda p: p.stat().st_mtime_ns) if proc.returncode == 0 else None
    return proc, out


@pytest.mark.slow
def test_eval_tests_all_replicas_or_one(tmp_path):
    run = tmp_path / "run"
    main(make_cfg([*MLP, "seed=5", "replicas=2"], run))
    replica = [json.loads((run / f"replica_{k}" / "results.json").read_text())["metrics"] for k in range(2)]

    proc, out = _eval([f"ckpt_path={run}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "eval_results.json").read_text())
    assert results["replica"] is None
    for k in range(2):
        for name in ("test/acc", "test/loss"):
            assert abs(results["metrics"][f"replica_{k}/{name}"] - replica[k][name]) <= 1e-6, (k, name)

    proc, out = _eval([f"ckpt_path={run}", "replica=1", "predict.split=test"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "eval_results.json").read_text())
    assert (results["replica"], results["seed"]) == (1, 6)
    assert abs(results["metrics"]["test/acc"] - replica[1]["test/acc"]) <= 1e-6
    rows = list(csv.DictReader(open(out / "predictions_test.csv")))
    accuracy = sum(r["label"] == r["predicted"] for r in rows) / len(rows)
    assert abs(accuracy - replica[1]["test/acc"]) <= 1e-6

    proc, _ = _eval([f"ckpt_path={run}", "replica=2"], tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        "error: replica=2 does not exist; this run trained replicas 0..1"
    )


@pytest.mark.parametrize("augmented", [False, True])
def test_stacked_loader_serves_each_replica_its_own_loaders_batches(augmented):
    from dlfoundations.data import TensorBatchLoader
    from dlfoundations.data.augment import random_crop_flip
    from dlfoundations.replicas.data import StackedLoader

    x = torch.randn(53, 3, 8, 8)
    labels = [torch.randint(10, (53,)) for _ in range(3)]  # each replica's own (noisy) labels

    def augment(batch, generator):
        return (random_crop_flip(batch[0], 2, True, generator), batch[1])

    def loader(k):
        transform = augment if augmented else None
        return TensorBatchLoader((x, labels[k]), 10, shuffle=True, seed=k, transform=transform)

    stacked = StackedLoader([loader(k) for k in range(3)])
    for epoch in (0, 1):
        stacked.sampler.set_epoch(epoch)
        alone = [loader(k) for k in range(3)]
        for one in alone:
            one.sampler.set_epoch(epoch)
        batches = list(stacked)
        assert len(batches) == len(stacked) == 6
        for k, one in enumerate(alone):
            for (xs, ys), (x1, y1) in zip(batches, one):
                assert torch.equal(xs[k], x1) and torch.equal(ys[k], y1)


@pytest.mark.parametrize("family", ["resnet18k", "cnn", "cnn1d", "mlp"])
def test_stacked_net_steps_like_its_replicas(family):
    """One SGD step (train mode: BN batch statistics and running stats) of the stacked net equals
    one step of each replica alone: outputs, gradients, weights and buffers within 1e-5."""
    from dlfoundations.models import CNN, CNN1d, PreActResNet18
    from dlfoundations.models import MLP as MLPNet

    build, shape = {
        "resnet18k": (lambda: PreActResNet18(width=2), (3, 32, 32)),
        "cnn": (lambda: CNN(width=4), (3, 32, 32)),
        "cnn1d": (lambda: CNN1d(width=4), (1, 40)),
        "mlp": (lambda: MLPNet(40, width=8), (40,)),
    }[family]
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        nets.append(build())
    alone = [copy.deepcopy(net) for net in nets]
    stacked = stack_nets(nets)
    x, y = torch.randn(3, 8, *shape), torch.randint(10, (3, 8))
    out = stacked(x)
    sum(nn.functional.cross_entropy(out[k], y[k]) for k in range(3)).backward()
    torch.optim.SGD(stacked.parameters(), lr=0.1).step()
    for k, net in enumerate(alone):
        one = net(x[k])
        assert (out[k] - one).abs().max().item() <= 1e-5
        nn.functional.cross_entropy(one, y[k]).backward()
        torch.optim.SGD(net.parameters(), lr=0.1).step()
        mine = stacked.replica_state_dict(k)
        for name, value in net.state_dict().items():
            diff = (mine[name].float() - value.float()).abs().max().item()
            assert diff <= 1e-5, f"replica {k} {name}: max abs difference {diff} > 1e-5"
    assert stacked.replica(1).state_dict().keys() == alone[1].state_dict().keys()
