"""The 1-d CNN of the MNIST-1D deep double descent notebook (Greydanus 2020), width c."""

import torch
from torch import nn


class CNN1d(nn.Module):
    """Conv1d(1,c,5,stride 2,pad 1)-ReLU-Conv1d(c,c,3,2,1)-ReLU-Conv1d(c,c,3,2,1)-ReLU-Linear(5c, classes)
    on length-40 signals (40 -> 19 -> 10 -> 5 positions); 6c^2 + 58c + 10 parameters with 10 classes."""

    def __init__(self, width: int = 32, num_classes: int = 10, in_channels: int = 1, length: int = 40) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"model.width (channels c) must be >= 1, got {width}")
        c = width
        self.features = nn.Sequential(
            nn.Conv1d(in_channels, c, 5, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(c, c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(c, c, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        with torch.no_grad():
            positions = self.features(torch.zeros(1, in_channels, length)).shape[-1]
        self.fc = nn.Linear(c * positions, num_classes)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # (batch, length) signals: one input channel
            x = x.unsqueeze(1)
        return self.fc(torch.flatten(self.features(x), 1))
