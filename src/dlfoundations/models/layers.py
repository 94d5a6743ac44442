"""Building blocks shared by the zoo: a norm layer that can be switched off without renaming, and
the initialisations a model may choose.

BN/no-BN twins are built from the same code with ``batch_norm`` on or off. Off, the BN slot holds an
``nn.Identity`` (no parameters), so every other layer keeps its name and index and a folded BN
model's state dict loads strictly into its twin. Convolutions that have no bias because a BN
follows them get one in the twin, where the folded BN shift goes.
"""

import torch
from torch import nn

INITS = ("default", "kaiming")

# Every BatchNorm class torch has (their common base class is private); a lazy BN becomes one of
# these when it first sees data.
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def norm2d(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


def norm1d(features: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm1d(features) if batch_norm else nn.Identity()


def conv_bn_relu(cin: int, cout: int, batch_norm: bool, bias: bool = True, **conv_kwargs) -> list[nn.Module]:
    """[Conv, BN (or Identity), ReLU]; ``bias`` is the convolution's own bias (on by default, BN or
    not, as in the models this zoo reproduces)."""
    return [nn.Conv2d(cin, cout, bias=bias, **conv_kwargs), norm2d(cout, batch_norm), nn.ReLU(inplace=True)]


@torch.no_grad()
def initialize(model: nn.Module, init: str) -> nn.Module:
    """``default``: PyTorch's layer defaults, left as they are. ``kaiming``: He et al.'s normal
    init for ReLU nets (std sqrt(2 / fan_in)) on every conv and linear weight, zero biases, so the
    activations keep their scale with depth (PyTorch's default shrinks their variance by about 1/3
    per layer: a deep plain net starts with an output that barely depends on its input)."""
    if init not in INITS:
        raise ValueError(f"model.init must be one of {INITS}, got {init!r}")
    if init == "kaiming":
        for module in model.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model
