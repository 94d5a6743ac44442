"""Typed schemas of the config: wrong types fail when Hydra composes, in one line (see cli.py).

- The schema of a group option (``data=mnist1d``, ``model=mlp``, ``task``, ``optimizer``,
  ``trainer``) is generated from the constructor of its ``_target_``: one field per argument, typed
  by its annotation, defaulting to the argument's default; nothing is listed by hand. conf/train.yaml
  puts ``schema/<group>/<option>`` under the group before the option's yaml, which then fills it.
- The root keys (``seed``, ``speed.steps_per_call``, ...) have no constructor: :class:`TrainConfig`
  (and :class:`EvalConfig` for conf/eval.yaml) types them.

Ranges are checked once, by the constructors; the schemas only check types.
"""

import dataclasses
import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf
from torch import nn

# Groups whose options are ``_target_`` configs checked against their constructors.
GROUPS = ("data", "model", "task", "optimizer", "trainer")
# Arguments the spine passes itself when it builds the object (train.py), not config keys.
PASSED_BY_SPINE = {"net", "params", "callbacks", "logger", "plugins"}
_HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
_PRIMITIVES = (int, float, bool, str)
_registered = False


def constructor_arguments(target: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """Arguments of a class (and of its bases that ``**kwargs`` passes on) or function: name ->
    parameter, name -> type hint, and whether the chain ends open (``**kwargs`` into a class whose
    arguments are unknown)."""
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    chain = target.__mro__ if isinstance(target, type) else (target,)
    for klass in chain:
        if isinstance(target, type) and "__init__" not in vars(klass):
            continue
        init = vars(klass)["__init__"] if isinstance(target, type) else target
        if klass is not target and klass.__module__.split(".")[0] in ("torch", "lightning", "builtins"):
            # A library base is read only when its arguments are all named (lightning.Trainer
            # under the project's Trainer); one that takes **kwargs ends the chain.
            if klass in (nn.Module, object) or _takes_kwargs(init):
                return params, hints, klass is not nn.Module and klass is not object
        skip = 1 if isinstance(target, type) else 0  # self
        try:
            found = typing.get_type_hints(init)
        except Exception:  # unresolvable annotations: names only
            found = {}
        open_ = False
        for p in list(inspect.signature(init).parameters.values())[skip:]:
            if p.kind is p.VAR_KEYWORD:
                open_ = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in params:
                params[p.name], hints[p.name] = p, found.get(p.name)
        if not open_:
            return params, hints, False
    return params, hints, False


def _takes_kwargs(function: Callable[..., Any]) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(function).parameters.values())


def node_type(hint: Any) -> Any:
    """The annotation OmegaConf checks for a constructor's type hint: ``int``, ``float | None``,
    ``int | float``, ``str`` for a ``Literal`` of strings, ...; ``Any`` for containers (lists,
    dicts) and where nothing is known. Members of a union that no config value can be (a tensor,
    a class: ``lr: float | Tensor``) are left out."""
    if hint is None or hint is Any:
        return Any
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    kinds: list[Any] = []
    for member in members:
        if typing.get_origin(member) is Literal:  # the types of its values
            kinds += [t for t in dict.fromkeys(type(a) for a in typing.get_args(member)) if t not in kinds]
        elif (
            member in _PRIMITIVES
            or member is type(None)
            or (isinstance(member, type) and issubclass(member, enum.Enum))
        ):
            kinds += [member] if member not in kinds else []
        elif _container(member):
            return Any
    if not [k for k in kinds if k is not type(None)] or not all(
        k in (*_PRIMITIVES, type(None)) or issubclass(k, enum.Enum) for k in kinds
    ):
        return Any
    return typing.Union[tuple(kinds)] if len(kinds) > 1 else kinds[0]  # noqa: UP007 (built at run time)


def _container(hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return origin is Any or origin in (list, tuple, dict, set, frozenset, Sequence, Mapping, Iterable)


def _plain(value: Any) -> Any:
    """A default as a config value (tuples become lists); ``MISSING`` where no config can hold it."""
    if isinstance(value, tuple):
        value = list(value)
    try:
        OmegaConf.create({"v": value})
    except Exception:  # e.g. a torch.dtype: the yaml must set it
        return MISSING
    return value


def schema(target: str, keys: list[str], name: str) -> type:
    """A dataclass for a config of ``target``: every constructor argument (except those the spine
    passes), typed and with its default, plus the config's own ``keys`` that are no argument
    (``Any``: preflight names them)."""
    import hydra.utils

    params, hints, _ = constructor_arguments(hydra.utils.get_object(target))
    fields: list[tuple[str, Any, Any]] = [("_target_", str, dataclasses.field(default=MISSING))]
    fields += [(k, Any, dataclasses.field(default=MISSING)) for k in _HYDRA_KEYS[1:] if k in keys]
    for arg, param in params.items():
        default = MISSING if param.default is param.empty else _plain(param.default)
        if arg in PASSED_BY_SPINE or (default is MISSING and arg not in keys):
            continue  # what no config can hold (a tensor, a dtype) is passed, or left to its default
        kind = node_type(hints.get(arg))
        if default is None and kind is not Any and type(None) not in typing.get_args(kind):
            kind = typing.Optional[kind]  # noqa: UP045 (a None default means None is allowed)
        if isinstance(default, list):
            fields.append((arg, kind, dataclasses.field(default_factory=functools.partial(list, default))))
        else:
            fields.append((arg, kind, dataclasses.field(default=default)))
    fields += [(k, Any, dataclasses.field(default=MISSING)) for k in keys if k not in params and k not in _HYDRA_KEYS]
    return dataclasses.make_dataclass(name, fields)


def _option(folder: Path, name: str) -> dict[str, Any]:
    """The keys of ``folder/name.yaml``, with those of the options its ``defaults`` list names."""
    node = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.load(folder / f"{name}.yaml")))
    merged: dict[str, Any] = {}
    for entry in node.pop("defaults", []):
        if entry != "_self_":  # a same-group option, e.g. trainer/cpu.yaml: [default]
            merged.update(_option(folder, str(entry)))
    merged.update(node)
    return merged


@dataclasses.dataclass
class Speed:
    """``speed``: how fast a run goes (conf/train.yaml says what each key does)."""

    steps_per_call: int = MISSING
    compile: Any = MISSING  # true, false or torch.compile arguments
    channels_last: bool = MISSING
    matmul_precision: str | None = MISSING


@dataclasses.dataclass
class DevicePool:
    """``device_pool``: the local parallel launcher's jobs (hydra/launcher=local)."""

    jobs_per_gpu: int = MISSING
    cpu_jobs: int | None = MISSING
    cpu_threads: int = MISSING


@dataclasses.dataclass
class TrainConfig:
    """The root keys of conf/train.yaml (which sets them all and says what they mean)."""

    task_name: str = MISSING
    tags: Any = MISSING
    seed: int = MISSING
    ckpt_path: str | None = MISSING
    weights: str | None = MISSING
    train: bool = MISSING
    test: bool = MISSING
    skip_finished: bool = MISSING
    speed: Speed = dataclasses.field(default_factory=lambda: Speed())
    replicas: int = 1  # models trained at once from consecutive seeds
    optimized_metric: str | None = MISSING
    print_config: bool = MISSING
    reference: Any = MISSING
    device_pool: DevicePool = dataclasses.field(default_factory=DevicePool)
    # The groups: typed by their own schemas (above) or untyped.
    data: Any = MISSING
    model: Any = MISSING
    task: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    trainer: Any = MISSING
    callbacks: Any = None  # an empty selection (callbacks=[], logger=[]) is none, as callbacks=none
    logger: Any = None
    paths: Any = MISSING


@dataclasses.dataclass
class Predict:
    split: str | None = MISSING
    input: str | None = MISSING


@dataclasses.dataclass
class EvalConfig(TrainConfig):
    """conf/eval.yaml adds ``predict`` and ``replica``."""

    predict: Predict = dataclasses.field(default_factory=Predict)
    replica: int | None = None  # of a replicated run: the one to test (None: all)


def register_schemas() -> None:
    """Put the root schemas (``schema/root``: train, eval) and a schema for every option of
    :data:`GROUPS` in conf/ (``schema/<group>/<option>``) into Hydra's ConfigStore."""
    global _registered
    if _registered:
        return
    store = ConfigStore.instance()
    store.store(group="schema/root", name="train", node=TrainConfig)
    store.store(group="schema/root", name="eval", node=EvalConfig)
    conf = Path(str(resources.files("dlfoundations.conf")))
    for group in GROUPS:
        for path in sorted((conf / group).rglob("*.yaml")):
            option = path.relative_to(conf / group).with_suffix("")
            keys = _option(path.parent, path.stem)
            if "_target_" in keys:
                node: Any = schema(str(keys["_target_"]), list(keys), "_".join((group, *option.parts)))
            else:
                node = {}  # nothing to check against
            store.store(group="/".join(("schema", group, *option.parent.parts)), name=option.name, node=node)
    _registered = True
