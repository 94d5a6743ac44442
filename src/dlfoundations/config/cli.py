"""The command-line entries' side of Hydra: its composition errors as one line, valid-key hints,
and quiet logs.

A value of the wrong type (``data.batch_size=abc``) is rejected by the typed schemas while Hydra
composes, an unknown option or key by Hydra; :func:`run_entry` prints each as one ``error:`` line
(naming the closest valid choice: ``experiment=memorise`` -> did you mean memorize?) and exits with
2, like every other user mistake.
"""

import difflib
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException, InstantiationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from dlfoundations.config.overrides import is_hydra_key, override_key, override_value


def composition_error_line(err: BaseException, overrides: Iterable[str] = ()) -> str | None:
    """One line for a composition error that is a value of the wrong type, or a key a config file
    (e.g. an experiment) sets that the chosen option's schema lacks (naming the option chosen in
    ``overrides``, the command line's); None for other errors."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, (ValidationError, ConfigKeyError)):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    # Hydra names the config file that set the value only in its message ("In 'experiment/bad': ...").
    found = re.match(r"In '([^']+)':", str(err))
    where = f"'{found.group(1)}'" if found else None
    key = cause.full_key or ""
    if isinstance(cause, ConfigKeyError):  # from the command line: override_hints names the valid keys
        if not where:
            return None
        group = key.split(".")[0]
        chosen = next((f" ({o})" for o in overrides if override_key(o) == group), "")
        # The file's keys merge into the chosen option's schema before the command line applies
        # (a ~key cannot drop them): the way out is the option the file was written for, or a file
        # of one's own.
        return (
            f"{key} (set in {where}) is no argument of the chosen {group} config{chosen}; {where} was written "
            f"for another {group}: choose that one, or copy it into an experiment of your own without {key}"
        )
    message = str(cause.msg).strip().splitlines()[0]  # the rest names the schema class: noise here
    line = f"{key}: {message}" if key else message
    return f"{line} (set in {where})" if where else line


def run_entry(entry: Callable[[], Any]) -> None:
    """Run a Hydra entry point (``@hydra.main`` function). Every composition error (a bad
    override, an unknown option or key, a value of the wrong type) is a user mistake: one
    ``error:`` line per mistake, naming the closest valid choice, and exit code 2. With
    ``HYDRA_FULL_ERROR`` set by the user, Hydra's own full report instead."""
    own = "HYDRA_FULL_ERROR" not in os.environ  # set by the user: Hydra's full traces, as asked
    if own:
        # Hydra re-raises its errors instead of printing them in several lines: see below.
        os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        entry()
    except CompactHydraException as err:  # composition: bad override, unknown option or key
        if not own or isinstance(err, InstantiationException):
            raise  # a constructor's own error while the run builds its objects: its traceback
        line = composition_error_line(err, [a for a in sys.argv[1:] if not a.startswith("-")])
        lines = [line] if line is not None else override_hints([a for a in sys.argv[1:] if not a.startswith("-")])
        if not lines:  # Hydra's own message: its first line is the mistake, the rest its search path
            lines = [next((t.strip() for t in str(err).splitlines() if t.strip()), type(err).__name__)]
        for text in lines:
            print(f"error: {text}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if not own:
            raise
        # Ctrl-C outside Lightning's fit (which handles its own): start-up, data loading, or the
        # parent of a local parallel sweep waiting on its workers. The sweep's summary follows.
        print("error: interrupted (Ctrl-C); files written so far are kept", file=sys.stderr, flush=True)
        sys.exit(130)
    except OSError as err:
        if not own or err.filename is None:
            raise  # (an I/O error of the run itself reaches here as RunFailed, with its traceback)
        # Typically Hydra creating the run dir under paths.log_dir (a file, or not writable).
        print(
            f"error: cannot write {err.filename}: {err.strerror}; choose a writable paths.log_dir "
            "(HYDRA_FULL_ERROR=1 shows where it happened)",
            file=sys.stderr,
        )
        sys.exit(2)
    finally:
        if own:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def _closest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]}? " if close else ""


def group_options(group: str) -> list[str] | None:
    """The options of config group ``group`` in conf/ (``model`` -> alexnet, cnn, ...), None when
    ``group`` is no group there. Hydra's own groups (``hydra/launcher``) also list what Hydra and
    its plugins bring (basic, joblib, submitit_slurm, ...), as Hydra's config loader sees them."""
    folder = Path(str(resources.files("dlfoundations.conf"))) / group
    if group.startswith("hydra/"):
        from hydra import initialize_config_module
        from hydra.core.global_hydra import GlobalHydra

        if GlobalHydra.instance().is_initialized():  # e.g. inside a test's or the caller's compose
            return sorted(GlobalHydra.instance().config_loader().get_group_options(group)) or None
        with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
            return sorted(GlobalHydra.instance().config_loader().get_group_options(group)) or None
    if not folder.is_dir():
        return None
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def override_hints(overrides: list[str]) -> list[str]:
    """One line per override that chooses an option its group does not have (``model=resnet50``,
    did you mean resnet18?), or else per key that is not in the composed config."""
    hints = []
    for override in overrides:
        key, value = override_key(override), override_value(override)
        a_group = key.startswith("hydra/") or not is_hydra_key(key)  # hydra/launcher is one, hydra.x is not
        options = group_options(key) if value is not None and a_group else None
        if options is None or value is None:
            continue
        # A sweep's comma list (model=mlp,cnn): each value is an option.
        values = [value] if value.startswith(("[", "{")) else [v.strip() for v in value.split(",")]
        for v in values:
            if v not in options and v != "null":
                hints.append(f"{key}={v} is not among the {key} options; {_closest(v, options)}({', '.join(options)})")
    return hints or unknown_key_hints(overrides)


def unknown_key_hints(overrides: list[str]) -> list[str]:
    """For ``key=value`` overrides whose key is not in the composed config, one line each naming
    the closest valid key and the valid keys at that place (Hydra itself only says that the key
    is not in the struct)."""
    from hydra import compose, initialize_config_module

    plain = [o for o in overrides if "=" in o and not o.startswith(("+", "~", "hydra.", "-"))]
    groups = [o for o in plain if "." not in override_key(o)]
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
        key = override_key(override)
        if "." not in key and key not in cfg:
            if group_options(key) is not None:  # a group choice (debug=fast): not a key
                continue
            homes = [
                f"{node}.{key}"
                for node in map(str, cfg)
                if isinstance(cfg[node], DictConfig)
                and key in cfg[node]
                and not OmegaConf.is_interpolation(cfg[node], key)  # e.g. task.steps_per_call: ${speed...}
            ]
            if homes:
                hints.append(f"{key} is not a root key; it is {' or '.join(homes)} ({homes[0]}=...)")
            else:
                root = list(map(str, cfg))
                hints.append(f"{key} is not a config key; {_closest(key, root)}root keys: {', '.join(root)}")
            continue
        if "." not in key or OmegaConf.select(cfg, key, default="\0missing") != "\0missing":
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None)
        if isinstance(node, DictConfig):
            # A typed node holds its constructor's arguments (schemas.py): there is nothing to add.
            add = f" (add a new one with +{override})" if OmegaConf.get_type(node) is dict else ""
            valid = sorted(map(str, node))
            hints.append(
                f"{key} is not a config key; {_closest(leaf, valid)}valid keys in {parent}: {', '.join(valid)}{add}"
            )
        else:
            hints.append(f"{key} is not a config key; {parent} is not a config node")
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
