"""Replicas: R seeds of one configuration trained at once in one process (``replicas=R``), each
exactly its separate run. See :mod:`dlfoundations.replicas.nets` (stacked networks),
:mod:`dlfoundations.replicas.data` (stacked batches) and :mod:`dlfoundations.replicas.build`
(building, refusals, per-replica results)."""

from dlfoundations.replicas.nets import StackedMLP, StackedNet, stack_nets

__all__ = ["StackedMLP", "StackedNet", "stack_nets"]
