"""dlfoundations: the classic experiments of deep-learning foundations, one command each.

Importing the package registers the OmegaConf resolvers conf/ uses; the typed schemas are
registered when Hydra loads the configs (``dlfoundations.conf``)."""

from dlfoundations.resolvers import register_resolvers

__version__ = "0.1.0"

register_resolvers()
