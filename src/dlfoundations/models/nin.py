"""A larger network-in-network pair (MFDNN HW7 P5): a conv trunk with a Linear classifier, and
its fully-convolutional twin in which each Linear is a conv whose kernel covers its input map.

Slid over a larger image, the fully-convolutional net computes, in one pass, the linear net's
output for every crop at offsets that are multiples of the trunk's stride
(:data:`LNiN.stride`). The trunk uses no padding, so a crop's features equal the big image's.
"""

from typing import cast

import torch
from torch import nn

from dlfoundations.models.layers import norm2d


def _trunk(in_channels: int, c1: int, c2: int, batch_norm: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 5, bias=not batch_norm),
        norm2d(c1, batch_norm),
        nn.ReLU(),
        nn.Conv2d(c1, c1, 1),
        nn.ReLU(),  # the "network in network" 1x1 layer
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5, bias=not batch_norm),
        norm2d(c2, batch_norm),
        nn.ReLU(),
        nn.Conv2d(c2, c2, 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


def _feature_side(input_size: int) -> int:
    return ((input_size - 4) // 2 - 4) // 2


class LNiN(nn.Module):
    """Trunk (5x5 conv, 1x1 conv, pool, twice) then Linear-ReLU-Linear-ReLU-Linear."""

    stride = 4  # total stride of the trunk

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 192,
        hidden: int = 1024,
        batch_norm: bool = False,
        input_size: int = 32,
    ) -> None:
        super().__init__()
        if width < 1 or hidden < 1:
            raise ValueError(f"model.width and model.hidden must be >= 1, got {width}, {hidden}")
        self.input_size, self.side = input_size, _feature_side(input_size)
        self.features = _trunk(in_channels, width, 2 * width, batch_norm)
        self.classifier = self._head(2 * width, hidden, num_classes)

    def _head(self, channels: int, hidden: int, num_classes: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * self.side * self.side, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class FullyConvLNiN(LNiN):
    """The same network with the classifier as convolutions: outputs a map of class scores."""

    def _head(self, channels: int, hidden: int, num_classes: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(channels, hidden, self.side),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, num_classes, 1),
        )


@torch.no_grad()
def to_fully_convolutional(net: LNiN) -> FullyConvLNiN:
    """The fully-convolutional twin of ``net`` with its weights (each Linear reshaped to a conv)."""
    first = cast(nn.Conv2d, net.features[0])  # see _trunk and _head for the layer types
    hidden, classes = cast(nn.Linear, net.classifier[1]).out_features, cast(nn.Linear, net.classifier[5]).out_features
    batch_norm = isinstance(net.features[1], nn.BatchNorm2d)
    fcn = FullyConvLNiN(classes, first.in_channels, first.out_channels, hidden, batch_norm, net.input_size)
    fcn.features.load_state_dict(net.features.state_dict())
    convs = [cast(nn.Conv2d, fcn.classifier[i]) for i in (0, 2, 4)]
    for conv, linear in zip(convs, [cast(nn.Linear, net.classifier[i]) for i in (1, 3, 5)]):
        assert conv.bias is not None  # the head's convs have biases
        conv.weight.copy_(linear.weight.view_as(conv.weight))
        conv.bias.copy_(linear.bias)
    return fcn
