"""Model zoo: plain ``nn.Module`` classes that know nothing of Lightning.

Every model takes its width (and ``num_classes``, ``in_channels`` where it makes sense) as
constructor arguments so that sweeps and BN/no-BN pairs are a matter of config.
"""

from dlfoundations.models.alexnet import MNISTAlexNet
from dlfoundations.models.mlp import MLP

__all__ = ["MNISTAlexNet", "MLP", "count_parameters"]


def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (all of them, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
