"""The AlexNet variant for 1x28x28 MNIST used by Zhang et al.-style memorization homeworks.

At ``width=1`` it is layer for layer the seed's ``label_memorization.py`` network
(8,925,738 parameters); ``width`` scales every channel and hidden size for quick CPU runs and
width sweeps.
"""

import torch
from torch import nn

from dlfoundations.models.layers import initialize


def _scaled(n: int, width: float) -> int:
    return max(1, round(n * width))


class MNISTAlexNet(nn.Module):
    """Conv(1,96,k4)-ReLU, Conv(96,96,k3)-ReLU, Conv(96,256,k5,p2)-ReLU, MaxPool(3,2),
    Conv(256,384,k3,p1)-ReLU, Conv(384,384,k3,p1)-ReLU, Conv(384,256,k3,p1)-ReLU, MaxPool(3,2),
    flatten, Dropout, Linear(.,800)-ReLU, Linear(800,num_classes); channel counts times ``width``.
    ``init="kaiming"``: He init instead of PyTorch's default (:func:`~dlfoundations.models.layers.initialize`).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: float = 1.0,
        dropout: float = 0.5,
        input_size: int = 28,
        init: str = "default",
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"model.width must be > 0, got {width}")
        c1, c2, c3, c4, hidden = (_scaled(n, width) for n in (96, 256, 384, 256, 800))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=4),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c1, kernel_size=3),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        side = input_size - 3 - 2  # k4 and k3 convs without padding
        side = (side - 3) // 2 + 1  # first max-pool
        side = (side - 3) // 2 + 1  # second max-pool; 28 -> 5, so 256*5*5 = 6400 at width 1
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c4 * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        initialize(self, init)  # "default": the seed's (PyTorch's) init, untouched

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
