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

MLPs of different widths stack too (:func:`pad_mlp`): each member is zero-padded to the widest
member's hidden sizes. A padded unit has zero weights in and out and a zero bias, so its activation
is ``act(0) = 0`` (ReLU, Tanh, GELU, ...; a sigmoid's 0.5 would leak into the gradients and is
refused), every gradient that reaches a padded weight is a product with such a zero, and the
padded entries stay exactly zero under SGD (momentum, weight decay) and Adam/AdamW: each member
trains exactly as its separate run (the same algorithm; sums over the extra zeros round alike in
float64). :meth:`StackedNet.replica` and :meth:`StackedNet.replica_state_dict` cut a member back
to its own shapes.

Any other net of different widths (channels of the MNIST-1D CNN, CNN-k, ResNet18-k) stacks the
same way (:func:`pad_net`): each member's tensors go into the leading corner of the widest member's
(out- and in-channels alike, BatchNorm's weight, bias and statistics too), zeros elsewhere. A padded
channel then computes 0 (a zero conv, BN of a constant 0 with weight and bias 0, ReLU and pooling of
0) and passes no gradient back, so it stays exactly zero; :func:`check_padding` proves it for the
net at hand in float64 (each member's outputs equal its padded copy's, train and eval mode) before
any training, and refuses what does not keep to it, with dropout refused outright.
"""

import copy
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from dlfoundations.models.mlp import MLP


class StackedNet(nn.Module):
    """``len(nets)`` replicas of one architecture trained side by side (see the module docstring)."""

    def __init__(self, nets: Sequence[nn.Module], members: Sequence[nn.Module] | None = None) -> None:
        """``nets``: one architecture, one shape per tensor; ``members``: the nets as their separate
        runs have them where ``nets`` are zero-padded copies (:func:`pad_mlp`), else ``nets``."""
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
        # Each member's own architecture (its shapes), for cutting it out of the stack.
        self._members = [copy.deepcopy(n).to("meta") for n in (members if members is not None else nets)]

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
        net = copy.deepcopy(self._members[k]).to_empty(device=device)
        net.load_state_dict(self.replica_state_dict(k))
        for mine, theirs in zip(net.modules(), self.stacked.modules()):
            mine.training = theirs.training
        return net

    def replica_state_dict(self, k: int) -> dict[str, Tensor]:
        """Replica ``k``'s state dict with the plain net's keys and its own shapes (what its
        separate run would save; a padded member cut back to its widths)."""
        shapes = {name: value.shape for name, value in self._members[k].state_dict().items()}
        return {
            name: value[k][tuple(slice(0, n) for n in shapes[name])].detach().clone()
            for name, value in self.stacked.state_dict().items()
        }

    def member_parameters(self, k: int) -> int:
        """Member ``k``'s number of parameters (its own, without padding)."""
        return sum(p.numel() for p in self._members[k].parameters())


class StackedLinear(torch.autograd.Function):
    """``baddbmm(bias, x, weight^T)`` over stacked weights ``[R, out, in]``, with the backward
    written in the weights' own layout: autograd's backward of the transposed view computes the
    weight gradient as ``[R, in, out]`` and copies it into place, a quarter of a wide layer's time
    on a CPU (benchmarks/RESULTS.md). The same products, so the same numbers (bit-identical here)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad
        return (
            torch.bmm(grad, weight) if need_x else None,
            torch.bmm(grad.transpose(1, 2), x) if need_weight else None,
            grad.sum(1) if need_bias else None,
        )


class StackedMLP(StackedNet):
    """An :class:`~dlfoundations.models.MLP`'s replicas as batched matrix products: each linear layer
    is one ``torch.baddbmm`` over the stacked weights (:class:`StackedLinear`; under autocast the
    plain op, which autocast knows); activations and dropout act elementwise."""

    def __init__(self, nets: Sequence[nn.Module], members: Sequence[nn.Module] | None = None) -> None:
        super().__init__(nets, members)
        assert isinstance(self.stacked, MLP)
        self.layers = list(self.stacked.net)  # the stacked modules, in order (already submodules)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            if isinstance(layer, nn.Flatten):
                x = x.flatten(2)
            elif isinstance(layer, nn.Linear):
                if layer.bias is not None and not torch.is_autocast_enabled(x.device.type):
                    x = StackedLinear.apply(x, layer.weight, layer.bias)
                    continue
                weight = layer.weight.transpose(1, 2)  # [R, in, out]
                x = torch.bmm(x, weight) if layer.bias is None else torch.baddbmm(layer.bias.unsqueeze(1), x, weight)
            else:
                x = layer(x)
        return x


# Activations with act(0) == 0: a zero-padded unit stays silent (see the module docstring).
ZERO_AT_ZERO = (nn.ReLU, nn.Tanh, nn.GELU, nn.LeakyReLU, nn.SiLU, nn.Identity)


def hidden_sizes(net: MLP) -> list[int]:
    return [m.out_features for m in net.net if isinstance(m, nn.Linear)][:-1]


def pad_mlp(net: MLP, sizes: Sequence[int]) -> MLP:
    """A copy of ``net`` with hidden sizes ``sizes`` (each >= its own): its weights and biases in
    the leading corner of each layer, zeros elsewhere. Refuses what would not keep the padding
    silent: an activation with act(0) != 0, dropout (its masks would be drawn over other shapes)."""
    own = hidden_sizes(net)
    if len(own) != len(sizes) or any(a > b for a, b in zip(own, sizes)):
        raise ValueError(f"cannot pad hidden sizes {own} to {list(sizes)}")
    for layer in net.net:
        if isinstance(layer, nn.Dropout) or not isinstance(layer, (nn.Linear, nn.Flatten, *ZERO_AT_ZERO)):
            raise ValueError(
                f"MLPs of different widths stack only with activations that are 0 at 0 and no dropout; "
                f"this one has {type(layer).__name__}"
            )
    padded = copy.deepcopy(net)
    linears = [i for i, m in enumerate(padded.net) if isinstance(m, nn.Linear)]
    widths = [cast(nn.Linear, padded.net[linears[0]]).in_features, *sizes]  # the inputs of each layer
    for j, i in enumerate(linears):
        old = cast(nn.Linear, padded.net[i])
        out = sizes[j] if j < len(sizes) else old.out_features
        new = nn.Linear(widths[j], out, bias=old.bias is not None, device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight.zero_()
            new.weight[: old.out_features, : old.in_features] = old.weight
            if old.bias is not None and new.bias is not None:
                new.bias.zero_()
                new.bias[: old.out_features] = old.bias
        padded.net[i] = new
    return padded


DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def pad_net(net: nn.Module, wide: nn.Module) -> nn.Module:
    """A copy of ``wide`` (the same architecture, every tensor at least as large) holding ``net``'s
    parameters and buffers in the leading corner of each tensor and zeros elsewhere."""
    if type(net) is not type(wide):
        raise ValueError(f"cannot pad a {type(net).__name__} to a {type(wide).__name__}")
    dropout = [type(m).__name__ for m in net.modules() if isinstance(m, DROPOUT)]
    if dropout:
        raise ValueError(f"nets of different widths stack only without dropout; this one has {dropout[0]}")
    own, padded = net.state_dict(), copy.deepcopy(wide)
    with torch.no_grad():
        for name, value in padded.state_dict().items():  # the tensors themselves: written in place
            mine = own[name]
            if mine.dim() != value.dim() or any(a > b for a, b in zip(mine.shape, value.shape)):
                raise ValueError(f"{name}: {list(mine.shape)} does not fit in {list(value.shape)}")
            value.zero_()
            value[tuple(slice(0, n) for n in mine.shape)] = mine
    return padded


def check_padding(net: nn.Module, padded: nn.Module, example: Tensor, tol: float = 1e-10) -> None:
    """``padded`` computes exactly ``net``: its outputs (train and eval mode) and the gradients of
    ``net``'s own entries, while its padded entries get exactly zero gradient and its padded buffers
    stay zero (float64, on copies). Zero gradient is what keeps padding zero under SGD (momentum,
    weight decay) and Adam: an output-only check would miss a unit that is silent forward but
    passes gradient back (a sigmoid's 0.5 into zero weights)."""

    def fail(what: str) -> ValueError:
        return ValueError(f"{type(net).__name__} does not keep zero-padded channels silent ({what})")

    x = example.double()
    for train in (True, False):
        mine, theirs = (copy.deepcopy(n).double().train(train) for n in (net, padded))
        out_mine, out_theirs = mine(x), theirs(x)
        diff = (out_mine - out_theirs).abs().max().item()
        if not diff <= tol:
            raise fail(f"outputs differ by {diff:.2g} in {'train' if train else 'eval'} mode")
        if not train:
            continue
        weights = torch.randn(out_mine.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        (out_mine * weights).sum().backward()
        (out_theirs * weights).sum().backward()
        own = dict(mine.named_parameters())
        for name, value in theirs.named_parameters():
            mine_grad = own[name].grad
            if value.grad is None or mine_grad is None:
                continue
            grad, corner = value.grad.clone(), tuple(slice(0, n) for n in own[name].shape)
            diff = (grad[corner] - mine_grad).abs().max().item()
            grad[corner] = 0
            if not diff <= tol:
                raise fail(f"{name}: its gradient differs by {diff:.2g}")
            if bool(grad.any()):
                raise fail(f"{name}: its padding gets gradient {grad.abs().max().item():.2g}")
        own_buffers = dict(mine.named_buffers())
        for name, buffer in theirs.named_buffers():
            rest = buffer.clone()
            rest[tuple(slice(0, n) for n in own_buffers[name].shape)] = 0
            if bool(rest.any()):
                raise fail(f"{name}: its padding became non-zero")


def stack_nets(nets: Sequence[nn.Module], example: Tensor | None = None) -> StackedNet:
    """The stacked form of ``nets`` (replicas of one architecture, or nets that differ only in
    their widths, zero-padded to the widest): batched matrix products for an MLP,
    :func:`torch.func.vmap` of the net's own forward for anything else. ``example`` (a batch of
    inputs) is what :func:`check_padding` runs nets other than MLPs of different widths on."""
    simple = (nn.Flatten, nn.Linear, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Dropout)
    shapes = [[t.shape for t in n.state_dict().values()] for n in nets]
    if any(s != shapes[0] for s in shapes) and not all(type(n) is MLP for n in nets):
        if example is None:
            raise ValueError("nets of different widths need an example input to check their padding")
        wide = max(nets, key=lambda n: sum(t.numel() for t in n.state_dict().values()))
        padded = [pad_net(n, wide) for n in nets]
        for net, copy_ in zip(nets, padded):
            check_padding(net, copy_, example)
        return StackedNet(padded, members=nets)
    if all(type(n) is MLP for n in nets):
        mlps = [cast(MLP, n) for n in nets]
        sizes = [hidden_sizes(n) for n in mlps]
        if any(s != sizes[0] for s in sizes):
            if len({len(s) for s in sizes}) != 1:
                raise ValueError(f"MLPs of different depths do not stack: hidden sizes {sizes}")
            widest = [max(column) for column in zip(*sizes)]
            return StackedMLP([pad_mlp(n, widest) for n in mlps], members=mlps)
        if all(isinstance(m, simple) for m in mlps[0].net):
            return StackedMLP(nets)
    return StackedNet(nets)
