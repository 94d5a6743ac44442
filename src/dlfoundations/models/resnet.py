"""ResNet18 (He et al. 2016) in torchvision's layout, with an ImageNet or a CIFAR stem.

With BN, ``stem="imagenet"`` and ``width=64`` the state dict is torchvision's ``resnet18``
(11,689,512 parameters at 1000 classes). Without BN, every BN slot is an Identity and the
convolutions get biases, so that a folded model loads into it.
"""

import torch
from torch import nn

from dlfoundations.models.layers import norm2d


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, batch_norm: bool) -> None:
        super().__init__()
        bias = not batch_norm
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.bn1 = norm2d(cout, batch_norm)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.bn2 = norm2d(cout, batch_norm)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=bias), norm2d(cout, batch_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet18; ``width`` is the first stage's channel count (64 in the paper)."""

    # Set with setattr in __init__ (names as in torchvision).
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 64,
        batch_norm: bool = True,
        stem: str = "cifar",
    ) -> None:
        super().__init__()
        if width < 1 or stem not in ("cifar", "imagenet"):
            raise ValueError(f"need model.width >= 1 and model.stem in [cifar, imagenet], got {width}, {stem!r}")
        bias = not batch_norm
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=bias)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:  # 32x32 inputs: 3x3 stride-1 stem, no max-pool
            self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=bias)
            self.maxpool = nn.Identity()
        self.bn1 = norm2d(width, batch_norm)
        self.relu = nn.ReLU(inplace=True)
        widths = [width, 2 * width, 4 * width, 8 * width]
        cin = width
        for i, cout in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(cin, cout, stride, batch_norm), BasicBlock(cout, cout, 1, batch_norm)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class PreActBlock(nn.Module):
    """Pre-activation block as in Nakkiran et al.'s code: BN-ReLU-conv twice, 1x1-conv shortcut
    (taken after the first BN-ReLU) when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int, batch_norm: bool) -> None:
        super().__init__()
        self.bn1 = norm2d(cin, batch_norm)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=not batch_norm)  # BN follows it
        self.bn2 = norm2d(cout, batch_norm)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """ResNet18-k of Nakkiran et al. (2019): pre-activation blocks, stage widths k, 2k, 4k, 8k,
    4x4 average pool, then Linear; no BN before the pool. 11,171,146 parameters at k=64."""

    # Set with setattr in __init__.
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"model.width (k) must be >= 1, got {width}")
        k = width
        self.conv1 = nn.Conv2d(in_channels, k, 3, 1, 1, bias=False)
        cin = k
        for i, cout in enumerate([k, 2 * k, 4 * k, 8 * k]):
            stride = 1 if i == 0 else 2
            blocks = [PreActBlock(cin, cout, stride, batch_norm), PreActBlock(cout, cout, 1, batch_norm)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.pool = nn.AvgPool2d(4)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        return self.linear(torch.flatten(self.pool(x), 1))
