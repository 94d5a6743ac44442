"""CNN-k: the 5-layer CNN of Nakkiran et al. (2019), "Deep Double Descent", for 3x32x32 inputs."""

import torch
from torch import nn

from dlfoundations.models.layers import conv_bn_relu


class CNN(nn.Module):
    """Conv(3,k)-BN-ReLU; Conv(k,2k)-BN-ReLU-MaxPool2; Conv(2k,4k)-BN-ReLU-MaxPool2;
    Conv(4k,8k)-BN-ReLU-MaxPool2; MaxPool4; Linear(8k, classes). 3x3 convs with bias, padding 1.
    1,558,026 parameters at k=64 with BN."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"model.width (k) must be >= 1, got {width}")
        k = width
        self.features = nn.Sequential(
            *conv_bn_relu(in_channels, k, batch_norm, kernel_size=3, padding=1),
            *conv_bn_relu(k, 2 * k, batch_norm, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            *conv_bn_relu(2 * k, 4 * k, batch_norm, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            *conv_bn_relu(4 * k, 8 * k, batch_norm, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            nn.MaxPool2d(4),
        )
        self.fc = nn.Linear(8 * k, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))
