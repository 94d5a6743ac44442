import pytest
import torch

from dlfoundations.models import MLP, MNISTAlexNet, count_parameters


def test_alexnet_matches_the_seed_parameter_count():
    # The seed's label_memorization.py network: 8,925,738 parameters.
    assert count_parameters(MNISTAlexNet()) == 8_925_738


def test_alexnet_layers_are_the_seeds():
    net = MNISTAlexNet()
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    spec = [(c.in_channels, c.out_channels, c.kernel_size[0], c.padding[0]) for c in convs]
    assert spec == [
        (1, 96, 4, 0),
        (96, 96, 3, 0),
        (96, 256, 5, 2),
        (256, 384, 3, 1),
        (384, 384, 3, 1),
        (384, 256, 3, 1),
    ]
    linears = [m for m in net.classifier if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(6400, 800), (800, 10)]
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("width", [0.125, 0.5, 2.0])
def test_alexnet_width_scales_channels(width):
    net = MNISTAlexNet(width=width)
    assert net.features[0].out_channels == round(96 * width)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    # Parameters grow roughly with width^2: strictly monotone is the property sweeps rely on.
    assert (count_parameters(net) > count_parameters(MNISTAlexNet())) == (width > 1)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_mlp_shapes_and_param_count(activation):
    net = MLP(in_features=40, width=32, depth=2, activation=activation)
    assert net(torch.zeros(5, 40)).shape == (5, 10)
    assert count_parameters(net) == (40 * 32 + 32) + (32 * 32 + 32) + (32 * 10 + 10)


def test_mlp_flattens_images_and_rejects_unknown_activation():
    assert MLP(in_features=784, width=8, depth=1)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="relu"):
        MLP(in_features=4, activation="gelu")


def test_he_init_keeps_the_alexnets_output_dependent_on_its_input():
    """model.init=kaiming (memorize_digits): at PyTorch's default init the 8-layer AlexNet's logits
    barely depend on the input (each ReLU layer shrinks the variance about 3x); He init keeps it."""
    x = torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    spread = {}
    for init in ("default", "kaiming"):
        torch.manual_seed(0)
        net = MNISTAlexNet(width=0.25, init=init).eval()
        with torch.no_grad():
            spread[init] = net(x).std(0).mean().item()  # logits' std across inputs
    assert spread["default"] < 1e-3 and spread["kaiming"] > 0.05, spread
    with pytest.raises(ValueError, match="model.init must be one of"):
        MNISTAlexNet(width=0.25, init="xavier")
