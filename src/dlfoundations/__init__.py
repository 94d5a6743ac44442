"""dlfoundations: the classic experiments of deep-learning foundations, one command each.

Importing the package registers the OmegaConf resolvers conf/ uses and the typed schemas that
conf/train.yaml names (``schema/...``), so every way to compose the configs works:
``initialize_config_dir(<repo>/conf)`` after ``import dlfoundations`` as well as
``pkg://dlfoundations.conf`` and the entry points."""

from dlfoundations.config.resolvers import register_resolvers
from dlfoundations.config.schemas import register_schemas

__version__ = "0.1.0"

register_resolvers()
register_schemas()
