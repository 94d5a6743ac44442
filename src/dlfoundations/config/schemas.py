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
# Hydra's own keys of an instantiable node: no constructor argument.
HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
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
    fields += [(k, Any, dataclasses.field(default=MISSING)) for k in HYDRA_KEYS[1:] if k in keys]
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
    fields += [(k, Any, dataclasses.field(default=MISSING)) for k in keys if k not in params and k not in HYDRA_KEYS]
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


class Figure(enum.StrEnum):
    """What a sweep's summary draws: the ``figures:`` list of conf/train.yaml and each experiment."""

    summary = "summary"  # summary.png: the metrics against x with bands (bars for a sweep over categories)
    heatmap = "heatmap"  # heatmap.png, epochwise_widest.png: error over width x epoch (Nakkiran et al. Fig. 2)
    zhang = "zhang"  # zhang.png, zhang.csv: test error and epochs to fit against label corruption
    report = "report"  # report.md, report.json, report.png: the measured points against the reference


def _root(default: Any = MISSING, *, bookkeeping: bool = False, eval: str | None = None, identity: bool = True) -> Any:
    """A root key and what it is to a run (the one list of these roles; see :func:`root_keys`):
    ``bookkeeping`` (where the run writes, what it logs, how long: may differ when a run resumes),
    ``eval`` (``own``: eval.py takes it from conf/eval.yaml; ``train_only``: eval refuses it) and
    ``identity`` (False: an override of it does not make another sweep job)."""
    metadata = {"bookkeeping": bookkeeping, "eval": eval, "identity": identity}
    if isinstance(default, type):
        return dataclasses.field(default_factory=default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainConfig:
    """The root keys of conf/train.yaml (which sets them all and says what they mean)."""

    task_name: str = _root(bookkeeping=True, eval="own")
    tags: Any = _root(bookkeeping=True, eval="own")
    seed: int = _root()
    ckpt_path: str | None = _root(bookkeeping=True, eval="own")
    weights: str | None = _root(eval="train_only")
    train: bool = _root(bookkeeping=True, eval="train_only")
    test: bool = _root(bookkeeping=True, eval="train_only")
    skip_finished: bool = _root(bookkeeping=True, eval="train_only", identity=False)
    speed: Speed = _root(Speed)
    replicas: int = _root(1)  # models trained at once from consecutive seeds
    pack_widths: list[int] | None = _root(None)  # MLP widths trained at once, each with `replicas` seeds
    optimized_metric: str | None = _root(bookkeeping=True)
    print_config: bool = _root(bookkeeping=True, eval="own")
    reference: Any = _root()
    figures: list[Figure] | None = _root(bookkeeping=True, identity=False)  # what the sweep summary draws
    device_pool: DevicePool = _root(DevicePool, bookkeeping=True)
    # The groups: typed by their own schemas (above) or untyped.
    data: Any = _root()
    model: Any = _root()
    task: Any = _root()
    optimizer: Any = _root()
    scheduler: Any = _root()
    trainer: Any = _root()
    # An empty selection (callbacks=[], logger=[]) is none, as callbacks=none.
    callbacks: Any = _root(None, bookkeeping=True, eval="own")
    logger: Any = _root(None, bookkeeping=True, eval="own")
    paths: Any = _root(bookkeeping=True, eval="own")


@dataclasses.dataclass
class Predict:
    split: str | None = MISSING
    input: str | None = MISSING


@dataclasses.dataclass
class EvalConfig(TrainConfig):
    """conf/eval.yaml adds ``predict`` and ``replica``."""

    predict: Predict = _root(Predict, eval="own")
    replica: int | None = _root(None, eval="own")  # of a replicated run: the one to test (None: all)


# Trainer options that only say how long a run goes or what it shows: a resume may change them.
TRAINER_BOOKKEEPING = tuple(
    f"trainer.{k}"
    for k in (
        "max_epochs",
        "min_epochs",
        "max_steps",
        "min_steps",
        "max_time",
        "log_every_n_steps",
        "enable_progress_bar",
        "enable_model_summary",
    )
)


def root_keys(**role: Any) -> tuple[str, ...]:
    """The root keys (of train and eval) whose role (:func:`_root`) matches, e.g.
    ``root_keys(eval="own")``, ``root_keys(identity=False)``."""
    fields = {f.name: f for schema in (TrainConfig, EvalConfig) for f in dataclasses.fields(schema)}
    return tuple(n for n, f in fields.items() if all(f.metadata.get(k) == v for k, v in role.items()))


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
