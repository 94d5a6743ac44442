"""The package ships every config folder without a hand-written list: src/dlfoundations/conf is a
symlink to the top-level conf/, and setuptools' package discovery (pyproject.toml) finds each
config folder through it."""

import tomllib

from hydra import compose, initialize_config_module
from setuptools import find_namespace_packages

from tests.helpers import REPO


def test_every_config_folder_is_a_discovered_package():
    link = REPO / "src" / "dlfoundations" / "conf"
    assert link.is_symlink() and link.resolve() == (REPO / "conf").resolve()
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = set(find_namespace_packages(where=str(REPO / find["where"][0]), include=find["include"]))
    folders = {
        "dlfoundations.conf." + ".".join(p.parent.relative_to(REPO / "conf").parts)
        for p in (REPO / "conf").rglob("*.yaml")
    } | {"dlfoundations.conf"}
    folders = {f.rstrip(".") for f in folders}
    assert folders <= found, f"config folders not shipped: {sorted(folders - found)}"
    # The SLURM launcher lives where Hydra looks for plugins.
    assert "hydra_plugins.dlfoundations_launcher" in found


def test_configs_are_found_through_the_package_not_the_working_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nowhere near conf/
    with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=memorize"])
    assert cfg.model._target_ == "dlfoundations.models.MNISTAlexNet"


def test_pyproject_states_ranges_and_constraints_pin_each_dependency_inside_them():
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    assert not [r for r in wanted if any(s.operator == "==" for s in r.specifier)]  # ranges, no exact pins
    assert project["requires-python"] == ">=3.11"
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line)
    for req in wanted:
        assert req.name in pins, f"constraints.txt has no exact version of {req.name}"
        assert req.specifier.contains(pins[req.name], prereleases=True), f"{req.name}=={pins[req.name]} not in {req}"
    assert not set(pins) - {r.name for r in wanted}, "constraints.txt pins a package pyproject does not name"
