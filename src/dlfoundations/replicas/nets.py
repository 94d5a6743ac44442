"""R replicas of one network as one ``nn.Module`` with stacked parameters.

:class:`StackedNet` keeps a copy of the first replica, ``stacked``, whose every parameter and
buffer has a leading replica dimension (``[R, *shape]``, the replicas' own initial values, as
:func:`torch.func.stack_module_state` stacks them). They are real parameters and buffers of the
module: device moves, optimizers, state dicts and checkpoints work as for any net, the modules keep
their types (so ``optimizer.no_decay: [bn, bias]`` finds BN and bias parameters), and the keys are
the plain net's keys under ``stacked.``. The forward pass maps inputs ``[R, B, ...]`` to logits
``[R, B, C]``: replica ``k`` sees only ``x[k]`` and its own parameters, buffers (BatchNorm statistics
are updated per replica) and dropout masks (``randomness="different"``).

Two forward implementations, chosen by :func:`stack_nets`: :class:`StackedNet` runs the net's own
``forward`` under :func:`torch.func.vmap` (any architecture); :class:`StackedMLP` runs an
:class:`~dlfoundations.models.MLP` as batched matrix products (``torch.baddbmm``), several times
cheaper per step for small widths.
"""

import copy
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from dlfoundations.models.mlp import MLP


class StackedNet(nn.Module):
    """``len(nets)`` replicas of one architecture trained side by side (see the module docstring)."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(nets) < 1:
            raise ValueError("StackedNet needs at least one net")
        kinds = {type(n) for n in nets}
        if len(kinds) != 1:
            raise ValueError(f"replicas must share one architecture, got {sorted(k.__name__ for k in kinds)}")
        params, buffers = stack_module_state(list(nets))
        self.num_replicas = len(nets)
        self.stacked = copy.deepcopy(nets[0])
        for name, value in params.items():
            owner, leaf = self._owner(name)
            setattr(owner, leaf, nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            owner, leaf = self._owner(name)
            owner.register_buffer(leaf, value.clone())
        # The architecture without storage: functional_call runs it on one replica's tensors. Kept
        # in a list so that it is not a submodule (no parameters, not moved, not saved).
        self._template = [copy.deepcopy(nets[0]).to("meta")]

    def _owner(self, name: str) -> tuple[nn.Module, str]:
        path, _, leaf = name.rpartition(".")
        return (self.stacked.get_submodule(path) if path else self.stacked), leaf

    @property
    def template(self) -> nn.Module:
        """The replicas' architecture on the meta device (no storage)."""
        return self._template[0]

    def forward(self, x: Tensor) -> Tensor:
        # functional_call runs the template: its modules take the stacked modules' train/eval modes
        # (Lightning sets and restores modes module by module, not only through train()).
        for mine, theirs in zip(self.template.modules(), self.stacked.modules()):
            mine.training = theirs.training
        params: dict[str, Tensor] = dict(self.stacked.named_parameters())
        buffers: dict[str, Tensor] = dict(self.stacked.named_buffers())
        return vmap(self._one, randomness="different")(params, buffers, x)

    def _one(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.template, (params, buffers), (x,))

    def replica(self, k: int) -> nn.Module:
        """Replica ``k`` as a plain net of the original architecture (a copy of its weights)."""
        if not 0 <= k < self.num_replicas:
            raise IndexError(f"replica {k} does not exist; there are {self.num_replicas} (0..{self.num_replicas - 1})")
        device = next(iter(self.stacked.state_dict().values())).device
        net = copy.deepcopy(self.template).to_empty(device=device)
        net.load_state_dict({name: value[k] for name, value in self.stacked.state_dict().items()})
        for mine, theirs in zip(net.modules(), self.stacked.modules()):
            mine.training = theirs.training
        return net

    def replica_state_dict(self, k: int) -> dict[str, Tensor]:
        """Replica ``k``'s state dict with the plain net's keys (what its separate run would save)."""
        return {name: value[k].detach().clone() for name, value in self.stacked.state_dict().items()}


class StackedMLP(StackedNet):
    """An :class:`~dlfoundations.models.MLP`'s replicas as batched matrix products: each linear layer
    is one ``torch.baddbmm`` over the stacked weights; activations and dropout act elementwise."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__(nets)
        assert isinstance(self.stacked, MLP)
        self.layers = list(self.stacked.net)  # the stacked modules, in order (already submodules)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            if isinstance(layer, nn.Flatten):
                x = x.flatten(2)
            elif isinstance(layer, nn.Linear):
                weight = layer.weight.transpose(1, 2)  # [R, in, out]
                x = torch.bmm(x, weight) if layer.bias is None else torch.baddbmm(layer.bias.unsqueeze(1), x, weight)
            else:
                x = layer(x)
        return x


def stack_nets(nets: Sequence[nn.Module]) -> StackedNet:
    """The stacked form of ``nets`` (replicas of one architecture): batched matrix products for an
    MLP, :func:`torch.func.vmap` of the net's own forward for anything else."""
    simple = (nn.Flatten, nn.Linear, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Dropout)
    if all(type(n) is MLP for n in nets) and all(isinstance(m, simple) for m in cast(MLP, nets[0]).net):
        return StackedMLP(nets)
    return StackedNet(nets)
