"""Fold BatchNorm into the preceding Conv/Linear layer, found from the torch.fx graph.

For a layer ``y = W x + b`` followed by BN in eval mode, ``BN(y) = W' x + b'`` with
``W' = W * gamma / sqrt(var + eps)`` and ``b' = (b - mu) * gamma / sqrt(var + eps) + beta``
(torch.nn.utils.fusion does the arithmetic). A BN is folded only when its input is the output of
a Conv/Linear module of matching dimension that nothing else reads and that is called once; every
other BN (after a ReLU, after a sum, without running stats, ...) is left in place and reported.
"""

import copy
from dataclasses import dataclass, field
from typing import Literal, cast, overload

import torch
import torch.fx as fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

from dlfoundations.errors import UserError

# The layer types a BN of each kind can fold into (same spatial dimension).
_FOLDS_INTO: dict[type[nn.Module], tuple[type[nn.Module], ...]] = {
    nn.BatchNorm1d: (nn.Conv1d, nn.Linear),
    nn.BatchNorm2d: (nn.Conv2d,),
    nn.BatchNorm3d: (nn.Conv3d,),
}


@dataclass
class FoldPlan:
    """``pairs``: (layer name, BN name) to fold; ``unfolded``: BN name -> why it stays."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    unfolded: dict[str, str] = field(default_factory=dict)


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"the output of {node.target} ({type(modules[str(node.target)]).__name__})"
    if node.op in ("call_function", "call_method"):
        name = getattr(node.target, "__name__", str(node.target))
        return f"the output of {name}()" + (" (a sum)" if name in ("add", "iadd", "sum") else "")
    return f"the model input ({node.target})" if node.op == "placeholder" else f"a {node.op} node"


def plan_batchnorm_folding(model: nn.Module) -> FoldPlan:
    """Which BN layers of ``model`` fold into which Conv/Linear, and why the others do not."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as err:  # fx raises many types for untraceable code
        raise UserError(f"fold_batchnorm needs a torch.fx-traceable model; tracing failed: {err}") from err
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    plan = FoldPlan()
    for node in graph.nodes:
        if node.op != "call_module" or type(modules[node.target]) not in _FOLDS_INTO:
            continue
        bn, name = modules[node.target], node.target
        src = node.args[0]
        layer = modules.get(src.target) if isinstance(src, fx.Node) and src.op == "call_module" else None
        if bn.running_mean is None or bn.running_var is None:
            plan.unfolded[name] = "it has no running statistics (track_running_stats=False)"
        elif not isinstance(layer, _FOLDS_INTO[type(bn)]):
            plan.unfolded[name] = f"its input is {_describe(src, modules)}, not a {_kinds(bn)}"
        elif len(src.users) > 1:
            plan.unfolded[name] = f"the output of {src.target} is also used elsewhere"
        elif calls[src.target] > 1 or calls[name] > 1:
            plan.unfolded[name] = f"{src.target} or {name} is called more than once"
        elif _out_features(layer) != bn.num_features:
            plan.unfolded[name] = f"{src.target} has {_out_features(layer)} outputs, BN {bn.num_features}"
        else:
            plan.pairs.append((src.target, name))
    return plan


def _kinds(bn: nn.Module) -> str:
    return "/".join(t.__name__ for t in _FOLDS_INTO[type(bn)])


def _out_features(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else cast(nn.Conv2d, layer).out_channels  # or Conv1d/3d


@overload
def fold_batchnorm(model: nn.Module, return_plan: Literal[False] = False) -> nn.Module: ...
@overload
def fold_batchnorm(model: nn.Module, return_plan: Literal[True]) -> tuple[nn.Module, FoldPlan]: ...
@overload
def fold_batchnorm(model: nn.Module, return_plan: bool) -> nn.Module | tuple[nn.Module, FoldPlan]: ...
@torch.no_grad()
def fold_batchnorm(model: nn.Module, return_plan: bool = False) -> nn.Module | tuple[nn.Module, FoldPlan]:
    """A copy of ``model`` with every foldable BN folded into its layer and replaced by
    ``nn.Identity`` (so the result has the layout of the model zoo's no-BN twin). The folded
    copy equals ``model.eval()``; unfoldable BNs stay as they are (see ``return_plan``)."""
    plan = plan_batchnorm_folding(model)
    folded = copy.deepcopy(model).eval()
    for layer_name, bn_name in plan.pairs:
        # The plan pairs only these layer types (see _FOLDS_INTO), and only BNs with running stats.
        layer = cast(nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d, folded.get_submodule(layer_name))
        bn = cast(nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d, folded.get_submodule(bn_name))
        assert bn.running_mean is not None and bn.running_var is not None
        dtype = layer.weight.dtype
        # Fold in float64, then round once: the folded weights are as exact as the dtype allows.
        weight, mean, var = layer.weight.double(), bn.running_mean.double(), bn.running_var.double()
        bias = layer.bias.double() if layer.bias is not None else None
        if bn.weight is None:  # affine=False: gamma = 1, beta = 0
            gamma, beta = torch.ones_like(mean), torch.zeros_like(mean)
        else:
            gamma, beta = bn.weight.double(), bn.bias.double()
        if isinstance(layer, nn.Linear):
            w, b = fuse_linear_bn_weights(weight, bias, mean, var, bn.eps, gamma, beta)
        else:
            w, b = fuse_conv_bn_weights(weight, bias, mean, var, bn.eps, gamma, beta)
        layer.weight = nn.Parameter(w.to(dtype))
        layer.bias = nn.Parameter(b.to(dtype))  # a conv without bias gets one
        folded.set_submodule(bn_name, nn.Identity())
    return (folded, plan) if return_plan else folded


def load_into_twin(folded: nn.Module, twin: nn.Module) -> nn.Module:
    """Load a folded model's weights into its no-BN twin (strictly) and return the twin."""
    try:
        twin.load_state_dict(folded.state_dict(), strict=True)
    except RuntimeError as err:
        left = sorted({k.rsplit(".", 1)[0] for k in folded.state_dict() if "running_mean" in k})
        hint = f"; BN layers that could not be folded: {left}" if left else ""
        raise UserError(f"the folded weights do not fit the no-BN twin{hint}: {err}".splitlines()[0]) from err
    return twin
