"""The model zoo: parameter counts from the papers and seeds, BN/no-BN twins, STM and NiN facts."""

import pytest
import torch
import torchvision
from torch import nn

from dlfoundations.models import (
    CNN,
    MLP,
    VGG,
    BottleneckBlock,
    GroupedSTMBlock,
    LNiN,
    MNISTAlexNet,
    PreActResNet18,
    ResNet18,
    SmallNet,
    STMBlock,
    STMNet,
    count_parameters,
    stm_paths_to_grouped,
    to_fully_convolutional,
)
from tests.helpers import BN_FAMILIES

torch.manual_seed(0)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: SmallNet(batch_norm=False), 16_791_258),
        (lambda: CNN(width=64), 1_558_026),
        (lambda: PreActResNet18(width=64), 11_171_146),
        (lambda: ResNet18(1000, stem="imagenet"), 11_689_512),
        (lambda: VGG(1000, classifier="torchvision", batch_norm=False), 138_357_544),
        (lambda: VGG(1000, classifier="torchvision", batch_norm=True), 138_365_992),
        (lambda: BottleneckBlock(), 213_504),
        (lambda: STMBlock(), 78_592),
        (lambda: GroupedSTMBlock(), 78_592),
        (lambda: MNISTAlexNet(), 8_925_738),
    ],
    ids=[
        "smallnet-noBN",
        "cnn-64",
        "resnet18k-64",
        "resnet18",
        "vgg16",
        "vgg16-bn",
        "bottleneck",
        "stm",
        "stm-grouped",
        "alexnet",
    ],
)
def test_parameter_counts(build, expected):
    assert count_parameters(build()) == expected


def test_resnet18_parameter_groups():
    net = ResNet18(1000, stem="imagenet")
    bn = sum(p.numel() for m in net.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    biases = sum(
        p.numel() for n, p in net.named_parameters() if n.endswith("bias") and "bn" not in n and "downsample.1" not in n
    )
    assert (bn, biases, count_parameters(net) - bn - biases) == (9_600, 1_000, 11_678_912)


@pytest.mark.parametrize(
    ("ours", "theirs", "size"),
    [
        (lambda: ResNet18(1000, stem="imagenet"), torchvision.models.resnet18, 64),
        (lambda: VGG(1000, classifier="torchvision"), torchvision.models.vgg16_bn, 32),
    ],
)
def test_torchvision_equivalence(ours, theirs, size):
    net, reference = ours().eval(), theirs().eval()
    reference.load_state_dict(net.state_dict(), strict=True)  # same names, shapes, layout
    x = torch.randn(2, 3, size, size)
    assert (net(x) - reference(x)).abs().max().item() <= 1e-5


BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


@pytest.mark.parametrize("family", sorted(BN_FAMILIES))
def test_no_bn_twin_has_the_same_layers_minus_bn(family):
    with_bn, twin = BN_FAMILIES[family](True), BN_FAMILIES[family](False)
    bn_names = {n for n, m in with_bn.named_modules() if isinstance(m, BN_TYPES)}
    assert bn_names and not any(isinstance(m, BN_TYPES) for m in twin.modules())

    def layers(net):
        return [
            (n, type(m).__name__) for n, m in net.named_modules() if n and not list(m.children()) and n not in bn_names
        ]

    assert layers(with_bn) == layers(twin)  # same names, same order, same types
    # Every non-BN weight has the same shape; the twin may add conv biases (where BN shifts fold to).
    bn_keys = {k for k in with_bn.state_dict() if k.rsplit(".", 1)[0] in bn_names}
    kept = {k: v.shape for k, v in with_bn.state_dict().items() if k not in bn_keys}
    twin_sd = {k: v.shape for k, v in twin.state_dict().items()}
    assert all(twin_sd[k] == s for k, s in kept.items())
    assert all(k.endswith(".bias") for k in set(twin_sd) - set(kept))
    x = torch.randn(2, 3, 32, 32)
    assert twin(x).shape == with_bn(x).shape == (2, 10)


def test_stm_paths_are_independent():
    block = STMBlock()
    params = list(block.parameters())
    assert len({p.data_ptr() for p in params}) == len(params) == 32 * 6  # no shared storage
    firsts = torch.stack([path[0].weight for path in block.paths])
    assert torch.cdist(firsts.flatten(1), firsts.flatten(1)).add(torch.eye(32)).min() > 0  # all differ
    x = torch.randn(2, 256, 6, 6)
    block(x).square().sum().backward()
    grads = torch.stack([path[0].weight.grad.flatten() for path in block.paths])
    assert torch.linalg.matrix_rank(grads) > 1  # each path learns its own update
    # Changing one path changes the output by exactly that path's change.
    with torch.no_grad():
        before, old = block(x), block.paths[7](x)
        block.paths[7][4].bias.add_(1.0)
        assert (block(x) - before - (block.paths[7](x) - old)).abs().max() <= 1e-5


def test_grouped_form_computes_the_same_function():
    block = STMBlock()
    grouped = stm_paths_to_grouped(block)
    x = torch.randn(3, 256, 8, 8)
    assert (grouped(x) - block(x)).abs().max().item() <= 1e-5
    assert count_parameters(grouped) == count_parameters(block)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_fully_convolutional_twin_equals_sliding_the_linear_net(batch_norm):
    net = LNiN(width=6, hidden=16, batch_norm=batch_norm)
    if batch_norm:  # non-trivial running statistics
        net.train()
        net(torch.randn(16, 3, 32, 32) * 2 + 1)
    net.eval()
    fcn = to_fully_convolutional(net).eval()
    big = torch.randn(2, 3, 52, 52)
    scores = fcn(big)
    assert scores.shape == (2, 10, 6, 6)  # (52 - 32) / stride 4 + 1 positions per side
    s = LNiN.stride
    diff = max(
        (net(big[:, :, s * i : s * i + 32, s * j : s * j + 32]) - scores[:, :, i, j]).abs().max().item()
        for i in range(6)
        for j in range(6)
    )
    assert diff <= 1e-5


def test_stmnet_in_path_form_and_mlp_on_cifar_shapes():
    assert STMNet(grouped=False, width=16, cardinality=4)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert MLP(in_features=3 * 32 * 32, width=8)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_stmnet_is_trainable():
    torch.manual_seed(0)
    net = STMNet(width=16, cardinality=8, num_blocks=2)
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], f"loss {losses[0]:.3f} -> {losses[-1]:.3f} should drop 5x in 50 steps"
