"""Receptive fields: the exact input pixels a unit depends on (from gradients), and the analytic
size/stride/offset for chains of convolutions and poolings.

The gradient method runs a *linearised, positive* copy of the model: activations and BN become
identities, max-pools become average pools of the same geometry, every weight is 1 and every bias
0. Then nothing cancels and no path is switched off, so the gradient of the unit with respect to
the input is non-zero exactly on the pixels the unit depends on, for any architecture.
"""

import copy
from dataclasses import dataclass

import torch
from torch import nn

from dlfoundations.analysis.counting import ACTIVATIONS
from dlfoundations.models.layers import BATCH_NORMS


class _Reached(Exception):
    pass


def _linearised(model: nn.Module) -> nn.Module:
    net = copy.deepcopy(model).eval()
    for name, module in list(net.named_modules()):
        if not name:
            continue
        replacement: nn.Module | None = None
        if isinstance(module, ACTIVATIONS) or isinstance(module, (*BATCH_NORMS, nn.Dropout)):
            replacement = nn.Identity()
        elif isinstance(module, nn.MaxPool2d):
            replacement = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, module.ceil_mode)
        if replacement is not None:
            net.set_submodule(name, replacement)
    with torch.no_grad():
        for p_name, p in net.named_parameters():
            p.fill_(0.0 if p_name.endswith("bias") else 1.0)
    return net


def receptive_field_mask(
    model: nn.Module, input_shape: tuple[int, ...], layer: str, unit: tuple[int, ...]
) -> torch.Tensor:
    """Boolean mask (H, W) of the input pixels that output ``unit`` = (channel, i, j) of module
    ``layer`` depends on, for an input of ``input_shape`` (C, H, W)."""
    net = _linearised(model)
    captured = {}

    def stop(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        captured["out"] = output
        raise _Reached  # the rest of the network is not needed

    handle = net.get_submodule(layer).register_forward_hook(stop)
    x = torch.ones(1, *input_shape, requires_grad=True)
    try:
        net(x)
    except _Reached:
        pass
    finally:
        handle.remove()
    captured["out"][(0, *unit)].backward()
    assert x.grad is not None  # x requires grad and the hook output depends on it
    return x.grad[0].abs().sum(0) > 0


def receptive_field_box(
    model: nn.Module, input_shape: tuple[int, ...], layer: str, unit: tuple[int, ...]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """((row_min, row_max), (col_min, col_max)), 0-indexed and inclusive, of the receptive field."""
    mask = receptive_field_mask(model, input_shape, layer, unit)
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    return (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))


@dataclass
class AnalyticField:
    """Unit ``i`` sees input rows ``start + i * stride .. start + i * stride + size - 1`` (clip to
    the image)."""

    size: int
    stride: int
    start: int


def analytic_receptive_field(layers: nn.Sequential, upto: int) -> AnalyticField:
    """Receptive field after ``layers[upto]`` for a chain of Conv2d/MaxPool2d/AvgPool2d and
    shape-preserving layers (square kernels)."""
    size, stride, start = 1, 1, 0
    for module in list(layers)[: upto + 1]:
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            s = module.stride if isinstance(module.stride, int) else module.stride[0]
            if isinstance(module.padding, str):  # Conv2d "same"/"valid": the offset is not a number
                raise ValueError(f"{module} has padding={module.padding!r}; give the padding as a number")
            p = module.padding if isinstance(module.padding, int) else module.padding[0]
            d = getattr(module, "dilation", 1)
            d = d if isinstance(d, int) else d[0]
            size += (d * (k - 1)) * stride
            start -= p * stride
            stride *= s
    return AnalyticField(size, stride, start)
