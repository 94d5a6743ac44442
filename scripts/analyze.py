"""Parameters, multiply-accumulates and activation evaluations of any model config, per layer.

    python scripts/analyze.py model=vgg16 data=cifar10
    python scripts/analyze.py model=analysis/alexnet_torchvision input_shape=[3,224,224] csv=alexnet.csv
    python scripts/analyze.py model=analysis/inception_naive input_shape=[256,32,32]

Composes the same Hydra configs as training (any override works); the input shape is the data
config's unless input_shape=[C,H,W] is given. MACs are counted by torch.utils.flop_counter.
Mistakes (an unknown config, a model that cannot take the input) are one line, exit code 2.
"""

import importlib.resources
import re
import sys
import tempfile

import yaml

USAGE = (
    "usage: python scripts/analyze.py model=<config> [data=<config>] [input_shape=[C,H,W]] [csv=out.csv] [overrides...]"
)


def parse_shape(text: str) -> tuple[int, ...]:
    """``[3,32,32]`` -> (3, 32, 32), or a UserError naming the expected form."""
    from dlfoundations.errors import UserError

    try:
        shape = yaml.safe_load(text)
    except yaml.YAMLError:
        shape = None
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        raise UserError(f"input_shape={text} is not a list of positive integers; write e.g. input_shape=[3,32,32]")
    return tuple(shape)


def compose_model(overrides: list[str]):
    """The train config composed with ``overrides`` and the model it describes."""
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from dlfoundations.config.checks import validate
    from dlfoundations.config.cli import composition_error_line
    from dlfoundations.config.compose import compose_config
    from dlfoundations.errors import UserError

    try:
        # As a run would compose it (paths in a scratch dir: nothing is written): the schemas check
        # types exactly as in training (the constructor checks ranges below).
        cfg = compose_config(overrides, output_dir=tempfile.gettempdir())
    except (HydraException, OmegaConfBaseException) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        first = composition_error_line(err) or first
        missing = re.search(r"Could not find '([\w/]+)/[^/']*'", first)
        if missing:  # name the configs there are instead of Hydra's search path
            folder = importlib.resources.files("dlfoundations.conf").joinpath(missing.group(1))
            names = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
            first += f"; available: {', '.join(names)}"
        raise UserError(f"{first} (python scripts/analyze.py --help)") from None
    validate(cfg)
    try:
        model = hydra.utils.instantiate(cfg.model, _convert_="all")
    except Exception as err:  # a constructor refusing its arguments: name the config and the reason
        cause = err.__cause__ or err
        raise UserError(
            f"model config {cfg.model.get('_target_')} cannot be built: {str(cause).splitlines()[0]}"
        ) from None
    return cfg, model


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip() + "\n\n" + USAGE)
        return 0
    import rich.console
    import rich.table
    from torch import nn

    from dlfoundations.analysis.counting import count_model
    from dlfoundations.atomic import atomic_write_csv
    from dlfoundations.errors import UserError

    try:
        if not argv:
            raise UserError(f"name a model config, e.g. model=vgg16 data=cifar10; {USAGE}")
        options = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if a.split("=", 1)[0] in ("input_shape", "csv")}
        overrides = [a for a in argv if a.split("=", 1)[0] not in options]
        cfg, model = compose_model(overrides)
        shape = parse_shape(options["input_shape"]) if "input_shape" in options else tuple(cfg.data.input_shape)
        try:
            counts = count_model(model, shape)
        except (RuntimeError, ValueError, TypeError) as err:
            raise UserError(
                f"{type(model).__name__} cannot take an input of shape {list(shape)} "
                f"({str(err).splitlines()[0]}); choose another data= or give input_shape=[C,H,W]"
            ) from None
        if "csv" in options:
            rows = ([l.name, l.kind, l.params, l.macs, l.activations] for l in counts.layers)
            try:
                atomic_write_csv(options["csv"], rows, ["layer", "type", "params", "macs", "activations"])
            except OSError as err:
                raise UserError(f"csv={options['csv']}: cannot write ({err}); give a writable path") from None
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = rich.table.Table(title=f"{type(model).__name__} on input {'x'.join(map(str, shape))} (batch 1)")
    for column in ("layer", "type", "params", "MACs", "activations"):
        table.add_column(column, justify="left" if column in ("layer", "type") else "right")
    for layer in counts.layers:
        if layer.params or layer.macs or layer.activations:
            table.add_row(layer.name, layer.kind, f"{layer.params:,}", f"{layer.macs:,}", f"{layer.activations:,}")
    total_macs = counts.total("macs") or 1
    for label, kinds in (("conv", (nn.Conv1d, nn.Conv2d, nn.Conv3d)), ("linear", (nn.Linear,))):
        macs = counts.total("macs", kinds)
        table.add_row(
            f"[b]{label} total",
            "",
            f"{counts.total('params', kinds):,}",
            f"{macs:,} ({100 * macs / total_macs:.2f}%)",
            "",
        )
    table.add_row(
        "[b]total", "", f"{counts.total('params'):,}", f"{counts.total('macs'):,}", f"{counts.total('activations'):,}"
    )
    rich.console.Console(width=120).print(table)
    if "csv" in options:
        print(f"per-layer counts written to {options['csv']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
