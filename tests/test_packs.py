"""MLPs of different widths in one stack, zero-padded to the widest: each member trains exactly as
its separate run (float64, within 1e-10: the same algorithm), its padded weights stay exactly
zero, and what would not keep the padding silent is refused."""

import copy
import math
import re

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback

from dlfoundations.errors import UserError
from dlfoundations.models.mlp import MLP
from dlfoundations.replicas.nets import StackedMLP, stack_nets

ATOL = 1e-10
WIDTHS, SEEDS = (2, 7, 47), (0, 1)
OPTIMIZERS = {
    "sgd_momentum_wd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
}


def _member(width: int, seed: int, **kwargs) -> MLP:
    torch.manual_seed(seed)
    return MLP(40, 10, width=width, **kwargs).double()


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_mlps_of_different_widths_train_in_one_stack_exactly_as_alone(optimizer):
    nets = [_member(w, s) for w in WIDTHS for s in SEEDS]
    alone = [copy.deepcopy(n) for n in nets]
    stacked = stack_nets(nets)
    assert isinstance(stacked, StackedMLP)
    assert [stacked.member_parameters(k) for k in range(len(nets))] == [
        sum(p.numel() for p in n.parameters()) for n in nets
    ]
    r, steps = len(nets), 12
    g = torch.Generator().manual_seed(0)
    x = torch.randn(steps, r, 32, 40, generator=g, dtype=torch.float64)  # each member its own batches
    y = torch.randint(0, 10, (steps, r, 32), generator=g)
    opt = OPTIMIZERS[optimizer](stacked.parameters())
    opts = [OPTIMIZERS[optimizer](n.parameters()) for n in alone]
    for step in range(steps):
        out = stacked(x[step])
        assert out.shape == (r, 32, 10)
        for k in range(r):  # the same forward as the member's own, before this step
            assert (out[k] - alone[k](x[step, k])).abs().max().item() <= ATOL
        opt.zero_grad()
        sum(F.cross_entropy(out[k], y[step, k]) for k in range(r)).backward()
        opt.step()
        for k in range(r):
            opts[k].zero_grad()
            F.cross_entropy(alone[k](x[step, k]), y[step, k]).backward()
            opts[k].step()
    for k in range(r):
        mine, theirs = stacked.replica_state_dict(k), alone[k].state_dict()
        assert mine.keys() == theirs.keys()
        worst = max((mine[n] - theirs[n]).abs().max().item() for n in theirs)
        assert worst <= ATOL, f"member {k} (width {WIDTHS[k // 2]}): max abs diff {worst}"
        member = stacked.replica(k)  # cut out: a net of the member's own widths
        assert [m.weight.shape for m in member.net if isinstance(m, torch.nn.Linear)] == [
            m.weight.shape for m in alone[k].net if isinstance(m, torch.nn.Linear)
        ]
        assert (member(x[0, k]) - alone[k](x[0, k])).abs().max().item() <= ATOL
    # Padded entries: exactly zero after training, weights and biases alike.
    for name, value in stacked.stacked.state_dict().items():
        for k in range(r):
            own = alone[k].state_dict()[name].shape
            mask = torch.ones_like(value[k], dtype=torch.bool)
            mask[tuple(slice(0, n) for n in own)] = False
            assert int((value[k][mask] != 0).sum()) == 0, f"{name}, member {k}: padding became non-zero"


def test_what_would_not_keep_the_padding_silent_is_refused():
    with pytest.raises(ValueError, match="0 at 0 and no dropout; this one has Sigmoid"):
        stack_nets([_member(2, 0, activation="sigmoid"), _member(7, 0, activation="sigmoid")])
    with pytest.raises(ValueError, match="different depths"):
        stack_nets([_member(2, 0, depth=1), _member(7, 0, depth=2)])
    same = stack_nets([_member(7, 0, activation="sigmoid"), _member(7, 1, activation="sigmoid")])
    assert isinstance(same, StackedMLP)  # one width: nothing padded, any activation


def test_a_pack_of_widths_and_seeds_trains_each_member_as_its_separate_run(tmp_path):
    # The project's own training step (ClassificationModule, per-member data, label noise per seed)
    # on a pack of MNIST-1D MLPs: widths 2 and 7, seeds 0 and 1.
    from dlfoundations.config.objects import instantiate
    from dlfoundations.replicas.build import build_pack
    from dlfoundations.run.train import main
    from dlfoundations.run.trainer import build_trainer, match_precision, trainer_kwargs
    from tests.helpers import MLP as RUN
    from tests.helpers import make_cfg

    run = [*RUN, "trainer.precision=64-true", "optimizer.momentum=0.9", "optimizer.weight_decay=1e-3"]
    members = [(w, s) for w in (2, 7) for s in (0, 1)]
    configs = [make_cfg([*run, f"model.width={w}", f"seed={s}"], tmp_path / f"w{w}_s{s}") for w, s in members]
    datamodule, stacked = build_pack(configs, instantiate)
    args = trainer_kwargs(configs[0].trainer)
    task = instantiate(configs[0].task, "task", net=match_precision(stacked, args), replicas=len(members))
    trainer = build_trainer({**args, "enable_checkpointing": False}, callbacks=[], logger=False)
    trainer.fit(task, datamodule=datamodule)
    packed = {k: float(v) for k, v in trainer.callback_metrics.items()}  # as train.py reads them
    trainer.test(task, datamodule=datamodule, verbose=False)
    packed.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    for k, (width, seed) in enumerate(members):
        alone = main(make_cfg([*run, f"model.width={width}", f"seed={seed}"], tmp_path / f"alone{k}"))
        state = torch.load(tmp_path / f"alone{k}" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        compared = [n for n in alone["metrics"] if n.split("/")[0] in ("train", "test", "train_eval")]
        assert len(compared) >= 6, compared  # loss and accuracy of each
        for name in compared:
            assert abs(packed[f"replica_{k}/{name}"] - alone["metrics"][name]) <= ATOL, (
                f"width {width} seed {seed}: {name}"
            )
        mine = stacked.replica_state_dict(k)
        worst = max((mine[n.removeprefix("net.")] - v).abs().max().item() for n, v in state.items())
        assert worst <= ATOL, f"width {width} seed {seed}: weights differ by {worst}"
        assert alone["num_params"] == stacked.member_parameters(k)


def test_a_job_with_pack_widths_writes_each_member_as_its_separate_run(tmp_path):
    import json

    import yaml

    from dlfoundations.run.train import main
    from tests.helpers import MLP as RUN
    from tests.helpers import make_cfg

    run = [*RUN, "trainer.precision=64-true", "optimizer=adam", "optimizer.lr=0.01"]
    packed = main(make_cfg([*run, "seed=3", "replicas=2", "pack_widths=[7,2]"], tmp_path / "pack"))
    stacked = torch.load(tmp_path / "pack" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    members = [(7, 3), (7, 4), (2, 3), (2, 4)]  # widths outer, seeds inner
    assert [(r["width"], r["seed"]) for r in packed["replicas"]] == members
    for k, (width, seed) in enumerate(members):
        folder = tmp_path / "pack" / f"replica_{k}"
        mine = json.loads((folder / "results.json").read_text())
        alone = main(make_cfg([*run, f"seed={seed}", f"model.width={width}"], tmp_path / f"alone{k}"))
        overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
        assert {f"seed={seed}", f"model.width={width}"} <= set(overrides)  # what its separate run is
        assert [o for o in overrides if o.startswith(("pack_widths", "model.width", "seed"))] == sorted(
            [f"model.width={width}", f"seed={seed}"]
        )
        assert (mine["seed"], mine["width"], mine["num_params"]) == (seed, width, alone["num_params"])
        assert set(mine["metrics"]) == set(alone["metrics"])
        for name, value in alone["metrics"].items():
            assert abs(mine["metrics"][name] - value) <= ATOL, f"member {k} ({width}, {seed}): {name}"
        state = torch.load(tmp_path / f"alone{k}" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for key, value in state.items():
            padded = stacked["net.stacked." + key.removeprefix("net.")][k]
            assert (padded[tuple(slice(0, n) for n in value.shape)] - value).abs().max().item() <= ATOL, key
            rest = padded.clone()
            rest[tuple(slice(0, n) for n in value.shape)] = 0
            assert int((rest != 0).sum()) == 0, f"{key}: padding of member {k} became non-zero"


CONV_PACKS = {
    # (overrides, widths): the MNIST-1D CNN's channels; CNN-k with BatchNorm and per-seed flips (lr 0.01,
    # no crops: see tests/test_replicas.py on why); ResNet18-k (pre-activation, BN, shortcuts), 4 steps.
    "mnist1d_cnn": (["model=cnn1d"], (6, 2)),
    "cnn_batchnorm_flip": (["data=cifar10", "model=cnn", "optimizer.lr=0.01", "data.crop_padding=0"], (3, 1)),
    "resnet18k": (["data=cifar10", "model=resnet18k", "optimizer.lr=0.01", "data.crop_padding=0"], (2, 1)),
}


@pytest.mark.parametrize("setup", list(CONV_PACKS))
def test_conv_nets_of_different_widths_train_in_one_pack_each_as_its_separate_run(
    setup, tmp_path, data_root, cifar_files_accepted
):
    import json

    from dlfoundations.run.train import main
    from tests.helpers import CIFAR, MLP, make_cfg

    extra, widths = CONV_PACKS[setup]
    base = [o for o in (CIFAR if "data=cifar10" in extra else MLP) if not o.startswith(("scheduler", "model"))]
    run = [*base, *extra, "trainer.precision=64-true", "optimizer.momentum=0.9", "optimizer.weight_decay=1e-3"]
    if setup == "resnet18k":
        run.append("trainer.max_steps=4")
    listed = ",".join(map(str, widths))
    main(make_cfg([*run, "seed=3", f"pack_widths=[{listed}]"], tmp_path / "pack", data_root))
    stacked = torch.load(tmp_path / "pack" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for k, width in enumerate(widths):
        alone = main(make_cfg([*run, "seed=3", f"model.width={width}"], tmp_path / f"alone{k}", data_root))
        mine = json.loads((tmp_path / "pack" / f"replica_{k}" / "results.json").read_text())
        assert (mine["width"], mine["num_params"], mine["global_step"]) == (
            width,
            alone["num_params"],
            alone["global_step"],
        )
        assert set(mine["metrics"]) == set(alone["metrics"])
        for name, value in alone["metrics"].items():
            assert abs(mine["metrics"][name] - value) <= ATOL, (
                f"width {width}: {name} {mine['metrics'][name]} vs {value}"
            )
        state = torch.load(tmp_path / f"alone{k}" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for key, value in state.items():
            padded = stacked["net.stacked." + key.removeprefix("net.")][k]
            corner = tuple(slice(0, n) for n in value.shape)
            diff = (padded[corner].double() - value.double()).abs().max().item()
            assert diff <= ATOL, f"width {width}: {key} differs by {diff}"
            rest = padded.clone()
            rest[corner] = 0
            assert int((rest != 0).sum()) == 0, f"width {width}: {key}'s padding became non-zero"


class _Conv(torch.nn.Module):
    """Conv(1, c) - act - global mean - Linear(c, 3), optionally with dropout."""

    def __init__(self, c: int, act: torch.nn.Module, dropout: bool = False) -> None:
        super().__init__()
        layers = [torch.nn.Conv1d(1, c, 3), act, *([torch.nn.Dropout(0.1)] if dropout else [])]
        self.features, self.fc = torch.nn.Sequential(*layers), torch.nn.Linear(c, 3)

    def forward(self, x):
        return self.fc(self.features(x.unsqueeze(1)).mean(-1))


def test_a_net_whose_padding_would_not_stay_silent_is_refused():
    x = torch.randn(8, 12)
    torch.manual_seed(0)
    stack_nets([_Conv(4, torch.nn.ReLU()), _Conv(2, torch.nn.ReLU())], x)  # padded ReLU channels are 0: fine
    with pytest.raises(
        ValueError, match=r"does not keep zero-padded channels silent \(fc.weight: its padding gets gradient"
    ):
        stack_nets([_Conv(4, torch.nn.Sigmoid()), _Conv(2, torch.nn.Sigmoid())], x)  # sigmoid(0) = 0.5 leaks
    with pytest.raises(ValueError, match=r"stack only without dropout; this one has Dropout"):
        stack_nets([_Conv(4, torch.nn.ReLU(), True), _Conv(2, torch.nn.ReLU(), True)], x)


def test_pack_widths_refuses_what_cannot_be_padded_in_one_line(tmp_path):
    from dlfoundations.errors import UserError
    from dlfoundations.run.train import main
    from tests.helpers import MLP as RUN
    from tests.helpers import make_cfg

    cases = {
        "model.activation=sigmoid": "model.activation=sigmoid is not 0 at 0",
    }
    for override, message in cases.items():
        with pytest.raises(UserError, match=re.escape(message)):
            main(make_cfg([*RUN, "pack_widths=[2,7]", override], tmp_path / override))
    with pytest.raises(UserError, match=r"must be distinct integers >= 1"):
        main(make_cfg([*RUN, "pack_widths=[2,2]"], tmp_path / "dup"))
    with pytest.raises(UserError, match=r"pack_widths=\[7\] with replicas=1 is one model; use model.width=7"):
        main(make_cfg([*RUN, "pack_widths=[7]"], tmp_path / "one"))


def test_a_sweep_summary_reads_a_pack_job_as_its_widths_and_seeds(tmp_path):
    import yaml

    from dlfoundations.record.collect import collect
    from dlfoundations.results.aggregate import write_aggregate
    from dlfoundations.run.train import main
    from tests.helpers import MLP as RUN
    from tests.helpers import make_cfg

    job = tmp_path / "sweep" / "0"  # the job dir of a multirun's only job
    main(make_cfg([*RUN, "replicas=2", "pack_widths=[7,2]", "trainer.max_epochs=1"], job))
    (job / ".hydra").mkdir(exist_ok=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["pack_widths=[7,2]", "replicas=2"]))
    rows, failed = collect(tmp_path / "sweep")
    assert failed == []
    assert [(str(r["model.width"]), str(r["seed"])) for r in rows] == [("7", "0"), ("7", "1"), ("2", "0"), ("2", "1")]
    agg, keys = write_aggregate(tmp_path / "sweep", rows)
    assert keys == ["model.width"]  # seeds pooled, one point per width
    assert sorted((str(a["model.width"]), a["count"]) for a in agg) == [("2", 2), ("7", 2)]


class Poison(Callback):
    """At optimizer step ``step``, the gradients of replica ``replica`` (of all, for a plain net)
    become NaN, so that its weights do: what a learning rate too large for one member does."""

    supports_replicas = True  # dlfoundations.config.replicable: it acts on one replica's slice

    def __init__(self, replica: int | None, step: int = 3) -> None:
        self.replica, self.step = replica, step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == self.step:
            for p in pl_module.parameters():
                (p.grad if self.replica is None else p.grad[self.replica]).fill_(float("nan"))


def summary_metric(job, k: int, name: str = "test/acc") -> float:
    import json

    return json.loads((job / f"replica_{k}" / "results.json").read_text())["metrics"][name]


def test_a_member_that_diverges_fails_alone_and_the_pack_resumes_exactly(tmp_path):
    # widths [7, 2] x seeds 3, 4: member 1 (width 7, seed 4) driven to NaN in epoch 0.
    import json

    from dlfoundations.record.collect import collect
    from dlfoundations.run.train import main
    from tests.helpers import MLP as RUN
    from tests.helpers import make_cfg

    poison = ["+callbacks.poison._target_=tests.test_packs.Poison", "+callbacks.poison.replica=1"]
    run = [*RUN, "trainer.precision=64-true", "optimizer.momentum=0.9", "optimizer.weight_decay=1e-3"]
    pack = [*run, *poison, "seed=3", "replicas=2", "pack_widths=[7,2]", "trainer.max_epochs=4"]
    job = tmp_path / "sweep" / "0"
    summary = main(make_cfg(pack, job))
    assert [r.get("failed", "")[:40] for r in summary["replicas"]] == [
        "",
        "training diverged: the loss became NaN/i",
        "",
        "",
    ]
    failure = json.loads((job / "replica_1" / "failure.json").read_text())
    assert not (job / "replica_1" / "results.json").exists()
    assert summary["optimized_value"] is None  # the job's mean over its members needs them all

    # The member's separate run stops with the same error; the others equal theirs (float64, 1e-10).
    with pytest.raises(UserError) as err:
        main(
            make_cfg(
                [
                    *run,
                    *poison[:1],
                    "+callbacks.poison.replica=null",
                    "seed=4",
                    "model.width=7",
                    "trainer.max_epochs=4",
                ],
                tmp_path / "alone1",
            )
        )
    assert failure["error"] == f"UserError: {err.value}"
    stacked = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)
    assert stacked["epoch"] == 3  # the pack trained on to its last epoch
    for name, value in stacked["state_dict"].items():
        assert int((value[1] != 0).sum()) == 0, f"{name}: the diverged member is not held at zero"
    for k, (width, seed) in {0: (7, 3), 2: (2, 3)}.items():
        alone = main(
            make_cfg([*run, f"seed={seed}", f"model.width={width}", "trainer.max_epochs=4"], tmp_path / f"alone{k}")
        )
        mine = json.loads((job / f"replica_{k}" / "results.json").read_text())
        for name, value in alone["metrics"].items():
            assert abs(mine["metrics"][name] - value) <= ATOL, f"member {k}: {name}"

    # Summaries list the member as failed, with its error; the other three are rows.
    (job / ".hydra").mkdir(exist_ok=True)
    (job / ".hydra" / "overrides.yaml").write_text("- pack_widths=[7,2]\n- replicas=2\n- seed=3\n")
    rows, failed = collect(tmp_path / "sweep")
    assert [f["job"] for f in failed] == ["0/replica_1"] and failed[0]["error"] == failure["error"]
    assert len(rows) == 3

    # eval of the whole pack: the failed member's metrics are NaN; of that member alone: refused.
    from dlfoundations.config.compose import compose_config
    from dlfoundations.run.eval import main as evaluate

    tested = evaluate(compose_config([f"ckpt_path={job}"], str(tmp_path / "eval"), config_name="eval"))["metrics"]
    assert (
        math.isnan(tested["replica_1/test/acc"]) and abs(tested["replica_0/test/acc"] - summary_metric(job, 0)) <= ATOL
    )
    with pytest.raises(UserError, match=r"replica=1 failed in training and has no trained weights: training diverged"):
        evaluate(
            compose_config([f"ckpt_path={job}", "replica=1"], str(tmp_path / "eval1"), config_name="eval"),
            ["replica=1"],
        )

    # Stopped after epoch 2 and resumed from its last checkpoint: the same pack, member 1 still failed.
    main(make_cfg([*pack[:-1], "trainer.max_epochs=2"], tmp_path / "part"))
    ckpt = tmp_path / "part" / "checkpoints" / "last.ckpt"
    resumed = main(make_cfg([*pack, f"ckpt_path={ckpt}"], tmp_path / "resumed"))
    assert [r.get("failed") for r in resumed["replicas"]] == [r.get("failed") for r in summary["replicas"]]
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    worst = max((state[n] - v).abs().max().item() for n, v in stacked["state_dict"].items())
    assert worst <= ATOL, f"resumed pack's weights differ by {worst}"
    for k in (0, 2, 3):
        one, two = (json.loads((d / f"replica_{k}" / "results.json").read_text()) for d in (job, tmp_path / "resumed"))
        for name, value in one["metrics"].items():
            assert abs(two["metrics"][name] - value) <= ATOL, f"member {k}: {name}"
