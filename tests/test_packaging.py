"""The package ships every Python package and every config folder (pyproject lists them by hand)."""

import tomllib

from hydra import compose, initialize_config_module

from helpers import REPO


def test_pyproject_lists_every_package_and_config_folder():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    src = REPO / "src"
    code = {".".join(p.parent.relative_to(src).parts) for p in [*src.glob("dlfoundations/**/__init__.py"),
                                                                 *src.glob("hydra_plugins/*/__init__.py")]}
    conf = {"dlfoundations.conf"} | {
        "dlfoundations.conf." + ".".join(p.relative_to(REPO / "conf").parts)
        for p in (REPO / "conf").rglob("*") if p.is_dir() and p.name != "__pycache__"
    }
    assert code | conf == listed


def test_configs_are_found_through_the_package_not_the_working_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nowhere near conf/
    with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=memorize"])
    assert cfg.model._target_ == "dlfoundations.models.MNISTAlexNet"
