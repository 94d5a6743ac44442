"""Hydra's command-line overrides as text: the one parser every module uses.

``key=value`` sets a key, ``+key=value`` adds one, ``++key=value`` adds or sets, ``~key`` (or
``~key=value``) deletes; keys never hold ``=``, so the text splits at the first one. Run dirs keep
their overrides in this form (``.hydra/overrides.yaml``, ``results.json``), and summaries, identity,
resume commands and eval all read them through here.
"""

from collections.abc import Iterable


def override_key(override: str) -> str:
    """``+model.width=4`` -> ``model.width``; ``~callbacks.fold_bn`` -> ``callbacks.fold_bn``."""
    return override.split("=", 1)[0].lstrip("+~")


def is_delete(override: str) -> bool:
    return override.startswith("~")


def override_value(override: str) -> str | None:
    """The value's text (``+model.width=4`` -> ``4``), None for a delete without a value."""
    key, eq, value = override.partition("=")
    return value if eq else None


def override_values(overrides: Iterable[str]) -> dict[str, str]:
    """Key -> value text of the overrides that set a value (deletes left out)."""
    return {override_key(o): value for o in overrides if not is_delete(o) and (value := override_value(o)) is not None}


def without_keys(overrides: Iterable[str], keys: Iterable[str]) -> list[str]:
    """The overrides, less those of ``keys`` (in any form: ``key=``, ``+key=``, ``~key``)."""
    dropped = set(keys)
    return [o for o in overrides if override_key(o) not in dropped]


def is_hydra_key(key: str) -> bool:
    """``hydra.*``, ``hydra/launcher=...``: how Hydra runs the job, never what it computes."""
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))
