"""Parameters, multiply-accumulates and activation evaluations of any model config, per layer.

    python scripts/analyze.py model=vgg16 data=cifar10
    python scripts/analyze.py model=analysis/alexnet_torchvision input_shape=[3,224,224] csv=alexnet.csv
    python scripts/analyze.py model=analysis/inception_naive input_shape=[256,32,32]

Composes the same Hydra configs as training (any override works); the input shape is the data
config's unless input_shape=[C,H,W] is given. MACs are counted by torch.utils.flop_counter.
"""

import csv
import sys

import hydra
import rich.console
import rich.table
import yaml
from hydra import compose, initialize_config_module
from torch import nn

from dlfoundations.analysis.counting import count_model
from dlfoundations.config import register_resolvers


def main(argv: list[str]) -> int:
    register_resolvers()
    options = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if a.split("=", 1)[0] in ("input_shape", "csv")}
    overrides = [a for a in argv if a.split("=", 1)[0] not in options]
    with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    shape = yaml.safe_load(options["input_shape"]) if "input_shape" in options else list(cfg.data.input_shape)
    model = hydra.utils.instantiate(cfg.model, _convert_="all")
    counts = count_model(model, tuple(shape))
    table = rich.table.Table(title=f"{type(model).__name__} on input {'x'.join(map(str, shape))} (batch 1)")
    for column in ("layer", "type", "params", "MACs", "activations"):
        table.add_column(column, justify="left" if column in ("layer", "type") else "right")
    for layer in counts.layers:
        if layer.params or layer.macs or layer.activations:
            table.add_row(layer.name, layer.kind, f"{layer.params:,}", f"{layer.macs:,}", f"{layer.activations:,}")
    total_macs = counts.total("macs") or 1
    for label, kinds in (("conv", (nn.Conv1d, nn.Conv2d, nn.Conv3d)), ("linear", (nn.Linear,))):
        macs = counts.total("macs", kinds)
        table.add_row(f"[b]{label} total", "", f"{counts.total('params', kinds):,}", f"{macs:,} ({100 * macs / total_macs:.2f}%)", "")
    table.add_row("[b]total", "", f"{counts.total('params'):,}", f"{counts.total('macs'):,}", f"{counts.total('activations'):,}")
    rich.console.Console(width=120).print(table)
    if "csv" in options:
        with open(options["csv"], "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["layer", "type", "params", "macs", "activations"])
            writer.writerows([l.name, l.kind, l.params, l.macs, l.activations] for l in counts.layers)
        print(f"per-layer counts written to {options['csv']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
