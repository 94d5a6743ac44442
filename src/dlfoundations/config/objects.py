"""Objects built from config nodes (``_target_``), with bad values as one-line errors."""

from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from dlfoundations.errors import UserError


def instantiate(node: DictConfig, where: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that turns a bad value into a one-line :class:`UserError`."""
    try:
        # _convert_="all": constructors get plain lists/dicts, never OmegaConf containers (which
        # would, e.g., end up pickled in checkpoints).
        return hydra.utils.instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, (ValueError, TypeError)):
            raise UserError(f"{where}: {cause}") from err
        raise


def instantiate_group(group: DictConfig | None, where: str) -> list[Any]:
    """Instantiate every entry of a dict-of-configs group (callbacks, logger); null entries are off."""
    if not group:
        return []
    return [instantiate(node, f"{where}.{key!s}") for key, node in group.items() if node and "_target_" in node]
