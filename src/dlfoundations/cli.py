"""The command-line entries' side of Hydra: its composition errors as one line, valid-key hints,
and quiet logs.

A value of the wrong type (``data.batch_size=abc``) is rejected by the typed schemas while Hydra
composes; :func:`run_entry` prints that as ``error: <key>=<value>: <what the key takes>`` and exits
with 2, like every other user mistake.
"""

import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError


def composition_error_line(err: BaseException) -> str | None:
    """One line for a composition error that is a value of the wrong type, or a key a config file
    (e.g. an experiment) sets that the chosen option's schema lacks; None for other errors."""
    text = str(err)
    if "raised while composing config" in text:  # from a config file: Hydra keeps only the text
        where, *lines = [line.strip() for line in text.splitlines()]
        kind = where.split(":")[1].split()[0]
        where = where.split(":")[0].removeprefix("In ")
        key = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("full_key:")), "?")
        if kind == "ValidationError":
            return f"{key}: {lines[0]} (set in {where})"
        if kind == "ConfigKeyError":
            group = key.split(".")[0]
            return (
                f"{key} (set in {where}) is no argument of the chosen {group} config's class; choose one that takes it"
            )
        return None
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, ValidationError):
        cause = cause.__cause__
    if not isinstance(cause, ValidationError):
        return None
    message = str(cause.msg).strip().splitlines()[0]  # the rest names the schema class: noise here
    return f"{cause.full_key}: {message}" if cause.full_key else message


def run_entry(entry: Callable[[], Any]) -> None:
    """Run a Hydra entry point (``@hydra.main`` function). A composition error that is a wrong type
    (or a key a config file sets that its group's option lacks) is one ``error:`` line and exit
    code 2; when Hydra rejects an override whose key does not exist (exit 1), the valid keys at
    that place are printed too."""
    own = "HYDRA_FULL_ERROR" not in os.environ  # set by the user: Hydra's full traces, as asked
    if own:
        # Hydra re-raises its errors instead of printing them in several lines: see below.
        os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        entry()
    except CompactHydraException as err:  # composition: bad override, unknown option or key
        if not own:
            raise
        line = composition_error_line(err)
        if line is not None:
            print(f"error: {line}", file=sys.stderr)
            sys.exit(2)
        print(err, file=sys.stderr)  # as Hydra prints it
        if isinstance(err.__cause__, OmegaConfBaseException):
            print(err.__cause__, file=sys.stderr)
        for hint in unknown_key_hints([a for a in sys.argv[1:] if not a.startswith("-")]):
            print(hint, file=sys.stderr)
        sys.exit(1)
    finally:
        if own:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def unknown_key_hints(overrides: list[str]) -> list[str]:
    """For ``key=value`` overrides whose key is not in the composed config, one line each naming
    the valid keys at that place (Hydra itself only says that the key is not in the struct)."""
    from hydra import compose, initialize_config_module

    plain = [o for o in overrides if "=" in o and not o.startswith(("+", "~", "hydra.", "-"))]
    groups = [o for o in plain if "." not in o.split("=", 1)[0]]
    cfg = None
    # A wrong group choice fails (Hydra's message lists the options), and so does a root key that
    # does not exist: then the defaults still say where such a key lives.
    for chosen in (groups, []):
        try:
            with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
                cfg = compose("train", overrides=chosen)
            break
        except Exception:
            continue
    if cfg is None:
        return []
    hints = []
    for override in plain:
        key = override.split("=", 1)[0]
        if "." not in key and key not in cfg:
            homes = [
                f"{node}.{key}"
                for node in map(str, cfg)
                if isinstance(cfg[node], DictConfig)
                and key in cfg[node]
                and not OmegaConf.is_interpolation(cfg[node], key)  # e.g. task.steps_per_call: ${speed...}
            ]
            if homes:
                hints.append(f"error: {key} is not a root key; it is {' or '.join(homes)} ({homes[0]}=...)")
            continue
        if "." not in key or OmegaConf.select(cfg, key, default="\0missing") != "\0missing":
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None)
        if isinstance(node, DictConfig):
            # A typed node holds its constructor's arguments (schemas.py): there is nothing to add.
            add = f" (add a new one with +{override})" if OmegaConf.get_type(node) is dict else ""
            hints.append(f"error: {key} is not a config key; valid keys in {parent}: {', '.join(sorted(node))}{add}")
        else:
            hints.append(f"error: {key} is not a config key; {parent} is not a config node")
    return hints


def quiet_known_noise() -> None:
    """Silence warnings and log lines that are expected in this project and need no action."""
    for message in (
        # The run dir already holds config.yaml when the CSV logger starts (it only ever replaces
        # its own metrics.csv).
        r"Experiment logs directory .* exists and is not empty",
        r"Total length of `list` across ranks is zero",  # data.eval_sets=[]: no per-epoch evaluation
        r".*configure_optimizers` returned `None`",  # the closed-form ridge task has no optimizer
        r".*isinstance\(treespec, LeafSpec\)",  # Lightning's use of a deprecated torch API
        # training_step(dataloader_iter) is how the task takes several optimizer steps per call.
        r".*Found `dataloader_iter` argument in the `training_step`",
        # ... consumed several times per call on purpose; nothing here uses the hooks' batch_idx.
        r"You are using the `dataloader_iter` step flavor",
    ):
        warnings.filterwarnings("ignore", message=message)
    # Lightning advertises its cloud products at every Trainer start.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB}")
    )
