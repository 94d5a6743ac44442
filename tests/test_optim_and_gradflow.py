"""Parameter groups without weight decay, and the gradient-flow callback and experiment."""

import functools
import json

import torch

from dlfoundations.models import ResNet18
from dlfoundations.run.train import main
from dlfoundations.tasks.optim import build_optimizer
from tests.helpers import make_cfg


def test_no_decay_groups_exempt_bn_and_biases():
    net = ResNet18(width=8)
    factory = functools.partial(torch.optim.SGD, lr=0.1, weight_decay=0.5, no_decay=["bn", "bias"])
    opt = build_optimizer(factory, net)
    decay, exempt = opt.param_groups
    assert decay["weight_decay"] == 0.5 and exempt["weight_decay"] == 0.0
    bn_and_bias = {id(p) for n, p in net.named_parameters() if "bn" in n or "downsample.1" in n or n.endswith("bias")}
    assert {id(p) for p in exempt["params"]} == bn_and_bias
    assert sum(p.numel() for p in exempt["params"]) == sum(
        p.numel() for n, p in net.named_parameters() if id(p) in bn_and_bias
    )
    # One step with zero gradients: only the decayed weights move.
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt.step()
    moved = {n for n, p in net.named_parameters() if not torch.equal(before[n], p)}
    assert moved == {n for n, p in net.named_parameters() if id(p) not in bn_and_bias}


def test_every_optimizer_config_uses_no_decay(tmp_path):
    for name in ("sgd", "adam"):
        cfg = make_cfg([f"optimizer={name}"], tmp_path)
        assert list(cfg.optimizer.no_decay) == ["bn", "bias"]


def test_gradient_flow_vanishes_in_deep_sigmoid_mlp_not_in_residual(tmp_path):
    quick = ["experiment=gradient_flow", "data.train_size=500", "data.test_size=100", "trainer.max_epochs=1"]
    ratios = {}
    for model in ("mlp", "residual_mlp"):
        out = tmp_path / model
        results = main(make_cfg([*quick, f"model={model}", "model.activation=sigmoid"], out))
        ratios[model] = results["metrics"]["grad_flow/first_last_ratio"]
        assert (out / "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"
        flow = json.loads((out / "gradient_flow.json").read_text())
        layers = 21 if model == "mlp" else 22  # input (+ 20 hidden) + output; residual: input, 20 blocks, head
        assert len(flow["layers"]) == layers and len(flow["last_epoch"]) == layers
    assert ratios["mlp"] < 1e-8, f"sigmoid MLP first/last ratio {ratios['mlp']:.2e} should vanish"
    assert ratios["residual_mlp"] > 1e-2, f"residual MLP ratio {ratios['residual_mlp']:.2e} should not"
