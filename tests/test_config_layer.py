"""The config layer: typed schemas at compose time, resolvers on import, the Trainer from its
``_target_``, and the module rules (no private names across modules, no import cycle)."""

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import hydra
import lightning as L
import pytest
from hydra.errors import ConfigCompositionException
from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf

from dlfoundations.config.cli import composition_error_line
from dlfoundations.config.schemas import GROUPS, PASSED_BY_SPINE, constructor_arguments
from dlfoundations.errors import UserError
from dlfoundations.run.trainer import build_trainer, trainer_kwargs
from tests.helpers import REPO, make_cfg

# (override, the one line): a key of every kind of node, root keys included.
WRONG_TYPES = [
    ("data.batch_size=abc", "data.batch_size: Value 'abc' of type 'str' could not be converted to Integer"),
    ("data.label_noise=abc", "data.label_noise: Value 'abc' of type 'str' could not be converted to Float"),
    ("model.width=abc", "model.width: Value 'abc' of type 'str' could not be converted to Integer"),
    ("model.width=1.5", "model.width: Value '1.5' of type 'float' could not be converted to Integer"),
    ("optimizer.lr=abc", "optimizer.lr: Value 'abc' of type 'str' could not be converted to Float"),
    ("task.gradient_clip_val=x", "task.gradient_clip_val: Value 'x' of type 'str' could not be converted to Float"),
    ("trainer.max_epochs=x", "trainer.max_epochs: Value 'x' of type 'str' could not be converted to Integer"),
    ("seed=x", "seed: Value 'x' of type 'str' could not be converted to Integer"),
    ("speed.steps_per_call=x", "speed.steps_per_call: Value 'x' of type 'str' could not be converted to Integer"),
    ("replicas=x", "replicas: Value 'x' of type 'str' could not be converted to Integer"),
]


@pytest.mark.parametrize(("override", "line"), WRONG_TYPES, ids=[o for o, _ in WRONG_TYPES])
def test_wrong_types_fail_when_the_config_is_composed(override, line, tmp_path):
    with pytest.raises(ConfigCompositionException) as err:
        make_cfg([override], tmp_path)
    assert composition_error_line(err.value) == line


def test_a_config_file_with_a_wrong_type_fails_in_one_line(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "bad.yaml").write_text("# @package _global_\ndata:\n  batch_size: many\n")
    with pytest.raises(ConfigCompositionException) as err:
        make_cfg([f"hydra.searchpath=[file://{tmp_path}]", "experiment=bad"], tmp_path / "run")
    line = composition_error_line(err.value)
    assert line is not None and "\n" not in line
    assert line.startswith("data.batch_size: Value 'many' of type 'str' could not be converted to Integer")
    assert "experiment/bad" in line


def _cli(script: str, args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "src" / script), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_the_cli_prints_a_wrong_type_as_one_line_with_exit_code_2(tmp_path):
    args = {
        "data": ("train.py", ["data.batch_size=abc"]),
        "root": ("train.py", ["-m", "seed=0,x", "debug=fast"]),  # a sweep value too
        "eval": ("eval.py", ["ckpt_path=nowhere", "trainer.max_epochs=x"]),
        "file": ("train.py", ["experiment=double_descent_rf", "data=cifar10"]),  # a key its data lacks
    }
    for name in args:
        (tmp_path / name).mkdir()
    runs = {name: _cli(script, a, tmp_path / name) for name, (script, a) in args.items()}
    expected = {
        "data": "error: data.batch_size: Value 'abc' of type 'str' could not be converted to Integer",
        "root": "error: seed: Value 'x' of type 'str' could not be converted to Integer",
        "eval": "error: trainer.max_epochs: Value 'x' of type 'str' could not be converted to Integer",
        "file": "error: data.stream (set in 'experiment/double_descent_rf') is no argument of the chosen data "
        "config (data=cifar10); 'experiment/double_descent_rf' was written for another data: choose that one, "
        "or copy it into an experiment of your own without data.stream",
    }
    for name, proc in runs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err[-2000:]
        assert [line for line in err.splitlines() if line.startswith("error:")] == [expected[name]], err[-2000:]
        assert "Traceback" not in err
        if name != "root":  # a sweep also logs that it stopped; a single run prints only the error
            assert err.strip() == expected[name]
            assert not (tmp_path / name / "logs").exists()  # stopped before any run dir was made


@pytest.mark.parametrize(
    "init",
    [
        "initialize_config_module(config_module='dlfoundations.conf'",
        f"initialize_config_dir(config_dir={str(REPO / 'conf')!r}",
    ],
)
def test_import_dlfoundations_registers_the_resolvers_and_schemas_for_plain_hydra(init):
    # The config dir itself (not the package): Hydra imports nothing, so `import dlfoundations` must register.
    code = (
        "import dlfoundations\n"
        "from hydra import compose, initialize_config_module, initialize_config_dir\n"
        "from omegaconf import OmegaConf\n"
        "assert OmegaConf.has_resolver('dlf.numel') and OmegaConf.has_resolver('dlf.uid')\n"
        f"with {init}, version_base='1.3'):\n"
        "    cfg = compose('train', overrides=['data=mnist_bundled', 'model=mlp'])\n"
        "    try:\n"
        "        compose('train', overrides=['data.batch_size=abc'])\n"
        "    except Exception as err:\n"
        "        print('typed', type(err.__cause__).__name__)\n"
        "print('in_features', cfg.model.in_features)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    # ${dlf.numel:${data.input_shape}} of [1, 28, 28]; and the schemas are there without our helpers
    assert out.stdout.split() == ["typed", "ValidationError", "in_features", "784"]


def _options(group: str) -> list[str]:
    folder = REPO / "conf" / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_option_is_typed_by_its_constructor(group, tmp_path):
    for option in _options(group):
        node = make_cfg([f"{group}={option}"], tmp_path)[group]
        schema = OmegaConf.get_type(node)
        assert dataclasses.is_dataclass(schema), f"{group}={option} has no schema"
        params, _, _ = constructor_arguments(hydra.utils.get_object(node._target_))
        plain = (int, float, str, bool, type(None), list, tuple)  # defaults a config can hold
        wanted = {k for k, p in params.items() if isinstance(p.default, plain) and k not in PASSED_BY_SPINE}
        assert wanted <= set(node), f"{group}={option} lacks {sorted(wanted - set(node))}"
        unset = [k for k in node if OmegaConf.is_missing(node, k)]
        assert unset == [], f"{group}={option} leaves {unset} unset"
        raw = OmegaConf.to_container(node, resolve=False)  # interpolations kept as text
        ints = [f.name for f in dataclasses.fields(schema) if f.type is int and "${" not in str(raw[f.name])]
        if ints:  # an int argument refuses a word
            with pytest.raises(ConfigCompositionException):
                make_cfg([f"{group}={option}", f"{group}.{ints[0]}=abc"], tmp_path)


def test_the_trainer_is_built_from_its_target_with_the_runs_callbacks(tmp_path):
    class Marker(Callback):
        pass

    cfg = make_cfg(["trainer.max_epochs=3", "trainer.gpus=0", "trainer.limit_train_batches=0.5"], tmp_path)
    assert cfg.trainer._target_ == "dlfoundations.run.trainer.Trainer"
    args = trainer_kwargs(cfg.trainer)
    assert "gpus" not in args and args["accelerator"] == "cpu"  # the alias, mapped
    marker = Marker()
    trainer = build_trainer(args, callbacks=[marker], logger=False)
    assert isinstance(trainer, L.Trainer) and trainer.max_epochs == 3 and trainer.limit_train_batches == 0.5
    assert marker in trainer.callbacks
    with pytest.raises(UserError, match=r"^trainer.gpus='two' must be a number of GPUs"):
        trainer_kwargs(make_cfg(["trainer.gpus=two"], tmp_path).trainer)
    with pytest.raises(UserError, match=r"^trainer: .*strategy"):
        build_trainer(trainer_kwargs(make_cfg(["trainer.strategy=nonsense"], tmp_path).trainer), logger=False)


def test_a_run_dir_written_before_the_trainer_moved_still_builds_and_resumes(tmp_path):
    from dlfoundations.run.checkpoints import config_differences
    from dlfoundations.run.trainer import TARGET

    cfg = make_cfg(["trainer.max_epochs=1"], tmp_path)
    old = OmegaConf.to_container(cfg, resolve=True)
    old["trainer"]["_target_"] = "dlfoundations.trainer.Trainer"  # as config.yaml of such a run says
    assert trainer_kwargs(OmegaConf.create(old["trainer"]))["_target_"] == TARGET
    assert config_differences(old, OmegaConf.to_container(cfg, resolve=True)) == []


def test_hydra_finds_the_slurm_launcher_plugin_of_the_installed_package(tmp_path):
    # Outside the repo (no src/ on sys.path): what `dlf-train hydra/launcher=slurm` relies on.
    code = (
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.launcher import Launcher\n"
        "print(sorted(f'{c.__module__}.{c.__name__}' for c in Plugins.instance().discover(Launcher)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "hydra_plugins.dlfoundations_launcher.SlurmLauncher" in out.stdout


def test_plain_hydra_instantiate_of_the_trainer_node_gives_a_lightning_trainer(tmp_path):
    # The template habit: hydra.utils.instantiate(cfg.trainer), with the gpus alias in the node.
    for overrides, accelerator in (([], None), (["trainer.gpus=0"], "cpu"), (["trainer=cpu"], "cpu")):
        trainer = hydra.utils.instantiate(
            make_cfg([*overrides, "trainer.max_epochs=2"], tmp_path).trainer, logger=False
        )
        assert isinstance(trainer, L.Trainer) and trainer.max_epochs == 2
        if accelerator is not None:
            assert type(trainer.accelerator).__name__ == "CPUAccelerator"


def _python_files() -> list[Path]:
    return [
        p for d in ("src", "scripts", "benchmarks", "tests") for p in (REPO / d).rglob("*.py") if "conf" not in p.parts
    ]


def test_no_module_imports_a_private_name_of_another():
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dlfoundations"):
                found += [
                    f"{path.relative_to(REPO)}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")
                ]
    assert found == []


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at any level (module, class or function body:
    a function-level import is still a dependency, only a later one)."""
    modules = {}
    for path in (src / package).rglob("*.py"):
        if "conf" in path.relative_to(src).parts:
            continue
        name = ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                deps |= {node.module} | {f"{node.module}.{a.name}" for a in node.names} & set(modules)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names} & set(modules)
        # Importing a submodule imports its package first: that edge is Python's, not a layer's.
        graph[name] = {d for d in deps if not name.startswith(d + ".")} - {name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}

    def cycle_from(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep] if dep in path else [name, dep]
            if not state.get(dep) and (found := cycle_from(dep, [*path, dep])):
                return found
        state[name] = 2
        return None

    return [c for name in sorted(graph) if not state.get(name) and (c := cycle_from(name, [name]))]


# Bottom first: a module imports only modules of its own layer or of layers below it
# (config -> record -> run -> results -> launch, with the building blocks below all of them).
LAYERS = [
    ("errors", "atomic", "seeding", "devices", "words", "ticks"),
    ("data",),
    ("models",),
    ("analysis",),
    ("replicas",),
    ("tasks",),
    ("callbacks",),
    ("config",),
    ("record",),
    ("run",),
    ("results",),
    ("launch",),
    ("reproduce",),
]


def layer_of(module: str, package: str, layers: list[tuple[str, ...]]) -> int:
    part = module.removeprefix(package + ".").split(".")[0]
    found = [rank for rank, names in enumerate(layers) if part in names]
    assert found, f"{module} is in no layer: add {part} to LAYERS"
    return found[0]


def upward_imports(graph: dict[str, set[str]], package: str, layers: list[tuple[str, ...]]) -> list[str]:
    """``a -> b`` for each import of a module ``b`` in a layer above ``a``'s (the package's own
    ``__init__`` is the entry, above every layer)."""
    return sorted(
        f"{a} -> {b}"
        for a, deps in graph.items()
        if a != package
        for b in deps
        if b != package and layer_of(b, package, layers) > layer_of(a, package, layers)
    )


def test_the_package_has_no_import_cycle_nor_upward_import_function_level_imports_included():
    graph = import_graph(REPO / "src", "dlfoundations")
    assert find_cycles(graph) == []
    assert upward_imports(graph, "dlfoundations", LAYERS) == []


def test_the_layer_check_finds_a_planted_upward_function_level_import(tmp_path):
    (tmp_path / "pkg" / "run").mkdir(parents=True)
    (tmp_path / "pkg" / "results").mkdir()
    for init in ("pkg", "pkg/run", "pkg/results"):
        (tmp_path / init / "__init__.py").write_text("")
    (tmp_path / "pkg" / "run" / "train.py").write_text("def f():\n    from pkg.results.report import g\n    return g\n")
    (tmp_path / "pkg" / "results" / "report.py").write_text("def g():\n    return 1\n")
    graph = import_graph(tmp_path, "pkg")
    assert find_cycles(graph) == []  # no cycle, and still wrong: run may not reach up into results
    assert upward_imports(graph, "pkg", [("run",), ("results",)]) == ["pkg.run.train -> pkg.results.report"]


def test_the_cycle_check_finds_a_planted_function_level_cycle(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "low.py").write_text("def f():\n    from pkg.high import g\n    return g\n")
    (tmp_path / "pkg" / "high.py").write_text("from pkg.low import f\n\ndef g():\n    return f\n")
    assert find_cycles(import_graph(tmp_path, "pkg")) == [["pkg.high", "pkg.low", "pkg.high"]]


def test_a_root_key_that_lives_in_a_node_is_pointed_to():
    from dlfoundations.config.cli import unknown_key_hints

    assert unknown_key_hints(["steps_per_call=4", "debug=fast"]) == [
        "steps_per_call is not a root key; it is speed.steps_per_call (speed.steps_per_call=...)"
    ]
    (line,) = unknown_key_hints(["sed=1"])
    assert line.startswith("sed is not a config key; did you mean seed? root keys: ")


def test_a_mistyped_launcher_is_pointed_to_the_closest_of_hydras_and_the_projects_launchers():
    from dlfoundations.config.cli import override_hints

    (line,) = override_hints(["-m", "hydra/launcher=locall", "seed=0,1"])
    assert line.startswith("hydra/launcher=locall is not among the hydra/launcher options; did you mean local? (")
    assert all(name in line for name in ("basic", "joblib", "packed", "slurm", "submitit_slurm"))
    assert override_hints(["hydra/launcher=packed", "hydra.job.chdir=false"]) == []  # valid: no hint
    # Inside an initialized Hydra (a caller's compose): the same full list, not the project's alone.
    from hydra import initialize_config_module

    with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
        assert override_hints(["hydra/launcher=locall"]) == [line]
