"""Model zoo: plain ``nn.Module`` classes that know nothing of Lightning.

Every model takes its width (and ``num_classes``, ``in_channels``, ``batch_norm`` where they make
sense) as constructor arguments, so sweeps and BN/no-BN pairs are a matter of config.
"""

from torch import nn

from dlfoundations.models.alexnet import MNISTAlexNet
from dlfoundations.models.cnn import CNN
from dlfoundations.models.cnn1d import CNN1d
from dlfoundations.models.mlp import MLP, ResidualMLP
from dlfoundations.models.nin import FullyConvLNiN, LNiN, to_fully_convolutional
from dlfoundations.models.random_features import RandomFeatures
from dlfoundations.models.resnet import PreActResNet18, ResNet18
from dlfoundations.models.small_net import SmallNet
from dlfoundations.models.stm import BottleneckBlock, GroupedSTMBlock, STMBlock, STMNet, stm_paths_to_grouped
from dlfoundations.models.vgg import VGG

__all__ = [
    "BottleneckBlock",
    "CNN",
    "CNN1d",
    "FullyConvLNiN",
    "GroupedSTMBlock",
    "LNiN",
    "MLP",
    "MNISTAlexNet",
    "PreActResNet18",
    "RandomFeatures",
    "ResNet18",
    "ResidualMLP",
    "STMBlock",
    "STMNet",
    "SmallNet",
    "VGG",
    "count_parameters",
    "stm_paths_to_grouped",
    "to_fully_convolutional",
]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (all of them, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
