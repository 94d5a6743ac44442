"""BN folding: exact on every BN family of the zoo, honest about what it cannot fold, and the
callback that proves it at the end of a run."""

import json

import pytest
import torch
from torch import nn

import dlfoundations.callbacks.fold_bn as fold_bn_callback
from dlfoundations.analysis import fold_batchnorm, load_into_twin, plan_batchnorm_folding
from dlfoundations.errors import UserError
from dlfoundations.run.train import main
from tests.helpers import BN_FAMILIES, make_cfg

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


def trained_briefly(net: nn.Module, dtype=torch.float32) -> nn.Module:
    """Random BN affine parameters, then 3 SGD steps on shifted/scaled data: non-trivial stats."""
    torch.manual_seed(0)
    net = net.to(dtype)
    for m in net.modules():
        if isinstance(m, BN_TYPES):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    net.train()
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(16, 3, 32, 32, dtype=dtype) * 2 + 0.5).square().mean().backward()
        opt.step()
    return net.eval()


@pytest.mark.parametrize("trained", [False, True], ids=["init", "trained"])
@pytest.mark.parametrize("family", sorted(BN_FAMILIES))
def test_folding_is_exact_in_fp32(family, trained):
    net = BN_FAMILIES[family](True)
    net = trained_briefly(net) if trained else net.eval()
    folded, plan = fold_batchnorm(net, return_plan=True)
    assert plan.pairs  # every family has at least one foldable Conv/Linear-BN pair
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        diff = (net(x) - folded(x)).abs().max().item()
    assert diff <= 1e-5, f"max abs diff {diff:.2e} > 1e-5 (fp32)"
    folded_bns = {bn for _, bn in plan.pairs}
    assert not any(isinstance(folded.get_submodule(bn), BN_TYPES) for bn in folded_bns)


@pytest.mark.parametrize("family", sorted(BN_FAMILIES))
def test_folding_is_exact_in_fp64(family):
    net = trained_briefly(BN_FAMILIES[family](True), torch.float64)
    folded = fold_batchnorm(net)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        diff = (net(x) - folded(x)).abs().max().item()
    assert diff <= 1e-10, f"max abs diff {diff:.2e} > 1e-10 (fp64)"


@pytest.mark.parametrize("family", ["smallnet", "vgg16", "resnet18", "resnet18-imagenet", "cnn", "nin"])
def test_folded_weights_load_strictly_into_the_no_bn_twin(family):
    net = trained_briefly(BN_FAMILIES[family](True))
    folded, plan = fold_batchnorm(net, return_plan=True)
    assert plan.unfolded == {}
    twin = load_into_twin(folded, BN_FAMILIES[family](False)).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert (twin(x) - net(x)).abs().max().item() <= 1e-5


def test_preactivation_bn_is_reported_and_the_twin_refuses_it():
    net = trained_briefly(BN_FAMILIES["resnet18k"](True))
    folded, plan = fold_batchnorm(net, return_plan=True)
    # conv1 -> bn2 inside each block folds; bn1 reads a sum (or a tensor also used by the shortcut).
    assert ("layer1.0.conv1", "layer1.0.bn2") in plan.pairs
    assert "sum" in plan.unfolded["layer1.1.bn1"] and "used elsewhere" in plan.unfolded["layer1.0.bn1"]
    assert isinstance(folded.get_submodule("layer1.1.bn1"), nn.BatchNorm2d)  # left intact
    with pytest.raises(UserError, match="could not be folded: .*layer1.1.bn1"):
        load_into_twin(folded, BN_FAMILIES["resnet18k"](False))


class Unfoldable(nn.Module):
    """One of each pattern that must not be folded, and one that must."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a, self.bn_after_relu = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv_b, self.conv_c, self.bn_after_sum = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
        self.conv_d, self.bn_no_stats = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False)
        self.conv_e, self.bn_shared_input = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
        self.conv_f, self.bn_ok = nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4)

    def forward(self, x):
        a = self.bn_after_relu(torch.relu(self.conv_a(x)))
        b = self.bn_after_sum(self.conv_b(x) + self.conv_c(x))
        d = self.bn_no_stats(self.conv_d(x))
        e_raw = self.conv_e(x)
        e = self.bn_shared_input(e_raw) + e_raw
        return a + b + d + e + self.bn_ok(self.conv_f(x))


def test_unfoldable_patterns_are_reported_and_left_intact():
    net = trained_briefly(Unfoldable())
    folded, plan = fold_batchnorm(net, return_plan=True)
    assert plan.pairs == [("conv_f", "bn_ok")]
    assert set(plan.unfolded) == {"bn_after_relu", "bn_after_sum", "bn_no_stats", "bn_shared_input"}
    assert "relu" in plan.unfolded["bn_after_relu"] and "sum" in plan.unfolded["bn_after_sum"]
    assert "running statistics" in plan.unfolded["bn_no_stats"]
    assert "used elsewhere" in plan.unfolded["bn_shared_input"]
    for name in plan.unfolded:
        assert isinstance(folded.get_submodule(name), nn.BatchNorm2d)
    assert folded.conv_f.bias is not None  # a conv without bias gets one
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert (net(x) - folded(x)).abs().max().item() <= 1e-5


def test_folding_leaves_the_original_model_alone():
    net = trained_briefly(BN_FAMILIES["smallnet"](True))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    plan_batchnorm_folding(net)
    fold_batchnorm(net)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


BN_FOLD_RUN = [
    "experiment=bn_fold_cpu",
    "debug=short",
    "callbacks.fold_bn.timing_repeats=2",
    "callbacks.fold_bn.max_batches=2",
]


def test_callback_checks_saves_and_the_twin_evaluates_the_same(tmp_path):
    results = main(make_cfg(BN_FOLD_RUN, tmp_path / "run"))
    m = results["metrics"]
    assert m["fold/max_abs_diff"] <= 1e-10 and m["fold/pairs"] == 3 and m["fold/unfolded"] == 0  # float64
    assert 0 < m["fold/max_abs_diff_fp32"] <= 1e-4  # float32 rounding of the folded weights, a few 1e-6
    assert m["fold/time_ratio"] > 0
    folded_dir = tmp_path / "run" / "folded"
    assert json.loads((folded_dir / "fold.json").read_text())["pairs"] == [
        ["conv1", "bn1"],
        ["conv2", "bn2"],
        ["fc1", "bn3"],
    ]
    program = torch.export.load(folded_dir / "model.pt2")
    state = torch.load(folded_dir / "state_dict.pt", weights_only=True)
    assert not any("bn" in k for k in state)
    # The saved folded weights, evaluated as the no-BN twin, give the trained model's test numbers.
    twin_run = main(
        make_cfg(
            [*BN_FOLD_RUN, "model.batch_norm=false", "train=false", f"weights={folded_dir / 'state_dict.pt'}"],
            tmp_path / "twin",
        )
    )
    assert twin_run["metrics"]["test/acc"] == m["test/acc"]
    assert abs(twin_run["metrics"]["test/loss"] - m["test/loss"]) <= 1e-5
    x = torch.randn(2, 1, 28, 28)
    assert program.module()(x).shape == (2, 10)


def test_callback_fails_the_run_when_a_folded_weight_is_corrupted(tmp_path, monkeypatch):
    def corrupted(net, return_plan=False):
        folded, plan = fold_batchnorm(net, return_plan=True)
        with torch.no_grad():
            folded.conv2.weight[0, 0, 0, 0] += 0.01
        return (folded, plan) if return_plan else folded

    monkeypatch.setattr(fold_bn_callback, "fold_batchnorm", corrupted)
    with pytest.raises(
        UserError, match=r"BN folding check failed: max abs diff .* \(float64\) .* exceeds .*atol=1e-10"
    ):
        main(make_cfg(BN_FOLD_RUN, tmp_path))
    assert (tmp_path / "metrics.csv").exists() and (tmp_path / "checkpoints" / "last.ckpt").exists()


@pytest.mark.parametrize(("model", "pairs"), [("resnet18", 20), ("vgg16", 13), ("cnn", 4)])
def test_fold_callback_needs_no_per_model_code(model, pairs, tmp_path, data_root, cifar_files_accepted):
    cfg = make_cfg(
        [
            "experiment=bn_fold",
            f"model={model}",
            "model.width=8" if model != "vgg16" else "model.width=0.125",
            "debug=fast",
            "data.batch_size=8",
            "callbacks.fold_bn.timing_repeats=1",
        ],
        tmp_path,
        data_root,
    )
    metrics = main(cfg)["metrics"]
    assert metrics["fold/pairs"] == pairs and metrics["fold/unfolded"] == 0  # every BN of the model
    assert metrics["fold/max_abs_diff"] <= 1e-10
