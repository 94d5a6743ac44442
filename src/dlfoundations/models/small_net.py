"""smallNet of the BN-removal homework (MFDNN HW7 ``bn_remove.py``) for 3x32x32 CIFAR-10."""

import torch
from torch import nn

from dlfoundations.models.layers import norm1d, norm2d


class SmallNet(nn.Module):
    """Conv(3,16,k3,p1)-BN-ReLU, Conv(16,16,k3,p1)-BN-ReLU, flatten, Linear(16*32*32,1024)-BN1d-ReLU,
    Linear(1024,10)[-ReLU]. Without BN: 16,791,258 parameters. ``width`` is the conv channel count,
    ``hidden`` the fully connected width; ``relu_on_logits`` keeps the seed's ReLU on the output."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 16,
        hidden: int = 1024,
        batch_norm: bool = True,
        relu_on_logits: bool = True,
        input_size: int = 32,
    ) -> None:
        super().__init__()
        if width < 1 or hidden < 1:
            raise ValueError(f"model.width and model.hidden must be >= 1, got {width}, {hidden}")
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, padding=1)
        self.bn1 = norm2d(width, batch_norm)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, padding=1)
        self.bn2 = norm2d(width, batch_norm)
        self.fc1 = nn.Linear(width * input_size * input_size, hidden)
        self.bn3 = norm1d(hidden, batch_norm)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.relu = nn.ReLU()
        self.relu_on_logits = relu_on_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.fc1(torch.flatten(x, 1))))
        x = self.fc2(x)
        return self.relu(x) if self.relu_on_logits else x
