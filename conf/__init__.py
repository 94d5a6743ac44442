"""Hydra configs of dlfoundations, shipped as package data (see pyproject.toml).

Hydra imports this package to read the configs (``pkg://dlfoundations.conf``,
``initialize_config_module("dlfoundations.conf")``): the typed schemas that conf/train.yaml names
(``schema/...``) are registered here, so that every composition checks types.
"""

from dlfoundations.config.schemas import register_schemas

register_schemas()
