"""VGG (Simonyan & Zisserman 2015) in torchvision's layout, with and without BN.

With ``batch_norm=True`` and ``classifier="torchvision"`` the state dict has torchvision's
``vgg16_bn`` keys. ``classifier="cifar"`` is the usual 32x32 variant: the 512x1x1 features feed a
single Linear layer.
"""

import torch
from torch import nn

from dlfoundations.models.layers import conv_bn_relu

CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG-``depth``; ``width`` multiplies every channel count (1.0 is the paper's network)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        depth: int = 16,
        width: float = 1.0,
        batch_norm: bool = True,
        classifier: str = "cifar",
        hidden: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if f"vgg{depth}" not in CONFIGS:
            raise ValueError(f"model.depth={depth} is not a VGG; use one of 11, 13, 16, 19")
        if width <= 0 or classifier not in ("cifar", "torchvision"):
            raise ValueError(
                f"need model.width > 0 and model.classifier in [cifar, torchvision], got {width}, {classifier!r}"
            )
        layers: list[nn.Module] = []
        cin = in_channels
        for v in CONFIGS[f"vgg{depth}"]:
            if isinstance(v, str):  # "M"
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                cout = max(1, round(v * width))
                layers += conv_bn_relu(cin, cout, batch_norm, kernel_size=3, padding=1)
                cin = cout
        self.features = nn.Sequential(*layers)
        if classifier == "torchvision":
            self.avgpool: nn.Module = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(cin * 7 * 7, hidden),
                nn.ReLU(True),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
                nn.ReLU(True),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        else:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.classifier = nn.Sequential(nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
