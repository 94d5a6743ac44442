"""How much memory a run needs, estimated before anything is allocated.

The model is built on PyTorch's ``meta`` device (shapes only, no storage) and run on a meta batch
of ``data.batch_size``: parameters, their gradients and the optimizer's state (SGD with momentum:
one buffer, Adam: two), plus every leaf module's output (what backward keeps), times ``replicas``.
This is a lower bound (no allocator slack, no workspace, no dataset): a run it refuses cannot fit,
a run it lets through may still not.
"""

import math
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from torch import nn

# Optimizer state per parameter, by optimizer class name (others: assumed two, as Adam).
STATE_PER_PARAM = {"SGD": None, "Adam": 2, "AdamW": 2, "RMSprop": 1, "Adagrad": 1}


def available_bytes(accelerator: str) -> tuple[int, str] | None:
    """Free memory of the device a run uses and its name: the current CUDA device's free memory,
    or MemAvailable of this machine; None where it cannot be read."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        # Reading it would start CUDA on the current device, before a sweep worker is given its
        # own GPU (devices.py): no estimate against GPU memory before CUDA is up.
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        free, _ = torch.cuda.mem_get_info()
        return int(free), f"GPU {torch.cuda.get_device_name()}"
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024, "this machine's RAM"
    return None


def _state_per_param(optimizer: DictConfig | None) -> int:
    node: Any = optimizer if optimizer is not None else {}
    name = str(node.get("_target_", "")).rsplit(".", 1)[-1]
    per = STATE_PER_PARAM.get(name, 2)
    if per is None:  # SGD: a momentum buffer only with momentum
        per = 1 if float(node.get("momentum") or 0) > 0 else 0
    return per


def estimate(cfg: DictConfig, replicas: int = 1) -> dict[str, Any] | None:
    """Parameters and bytes a run of ``cfg`` needs for one training step; None where the model
    cannot be built on the meta device (then nothing is estimated)."""
    shape, batch = cfg.data.get("input_shape"), int(cfg.data.get("batch_size") or 1)
    if shape is None or "_target_" not in cfg.get("model", {}):
        return None
    outputs: list[int] = []

    def keep(module: nn.Module, args: Any, out: Any) -> None:
        # A leaf's new output; views of its input (Identity, Flatten) and in-place ops add nothing.
        if isinstance(out, torch.Tensor) and not list(module.children()):
            view = any(out is a for a in args) or isinstance(module, (nn.Flatten, nn.Unflatten))
            if not view and not getattr(module, "inplace", False):
                outputs.append(out.numel())

    try:
        with torch.device("meta"), torch.random.fork_rng(devices=[]):
            net = hydra.utils.instantiate(cfg.model, _convert_="all")
            if not isinstance(net, nn.Module):
                return None
            hooks = [m.register_forward_hook(keep) for m in net.modules()]
            net(torch.zeros(batch, *shape))
            for hook in hooks:
                hook.remove()
    except Exception:  # a model that needs real data to build or run: no estimate
        return None
    params = sum(p.numel() for p in net.parameters())
    precision = str(cfg.trainer.get("precision", ""))
    dtype_bytes = 8 if precision.startswith("64") else 4
    # Weights, and for training their gradients and the optimizer's state.
    per_param = 2 + _state_per_param(cfg.get("optimizer")) if cfg.get("train", True) else 1
    weights = params * per_param * dtype_bytes * replicas
    activation_bytes = 2 if precision.startswith(("16", "bf16")) else dtype_bytes  # mixed: half-size activations
    activations = sum(outputs) * activation_bytes * replicas
    return {"params": params, "bytes": weights + activations, "weights": weights, "activations": activations}


def gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def describe(size: dict[str, Any], replicas: int, batch: int) -> str:
    times = f" x {replicas} replicas" if replicas > 1 else ""
    return (
        f"about {gib(size['bytes'])} ({size['params']:.3g} parameters{times}: {gib(size['weights'])} for weights, "
        f"gradients and optimizer state, {gib(size['activations'])} for the activations of a batch of {batch})"
    )


def fits(needed: float, available: float) -> bool:
    return math.isfinite(needed) and needed <= available
