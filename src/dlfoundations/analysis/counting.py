"""Parameters, multiply-accumulates and activation evaluations, per layer and in total.

MACs come from torch's own ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2 for matmuls
and convolutions); activation evaluations are the number of outputs of activation modules.
"""

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.ELU, nn.Softplus)


@dataclass
class LayerCount:
    name: str
    kind: str
    params: int
    macs: int
    activations: int


@dataclass
class ModelCount:
    input_shape: tuple[int, ...]
    layers: list[LayerCount] = field(default_factory=list)

    def total(self, attr: str, kinds: tuple[type, ...] | None = None) -> int:
        return sum(getattr(l, attr) for l in self.layers if kinds is None or l.kind in {k.__name__ for k in kinds})


@torch.no_grad()
def count_model(model: nn.Module, input_shape: tuple[int, ...]) -> ModelCount:
    """Per leaf module: parameters, MACs (for one input of ``input_shape``, batch 1) and
    activation evaluations. Conv biases count as parameters, not as MACs."""
    model = model.eval()
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    activations: dict[str, int] = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out, n=n: activations.__setitem__(n, activations.get(n, 0) + out.numel())
        )
        for n, m in leaves
        if isinstance(m, ACTIVATIONS)
    ]
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    per_module = counter.get_flop_counts()  # keys: "<ClassName>.<module path>"
    prefix = type(model).__name__
    result = ModelCount(tuple(input_shape))
    for name, module in leaves:
        flops = sum(per_module.get(f"{prefix}.{name}", {}).values())
        result.layers.append(
            LayerCount(
                name,
                type(module).__name__,
                sum(p.numel() for p in module.parameters(recurse=False)),
                flops // 2,
                activations.get(name, 0),
            )
        )
    return result
