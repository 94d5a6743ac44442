"""LightningModules, one per task (not per model): a net from the zoo is passed in."""

from dlfoundations.tasks.classification import ClassificationModule

__all__ = ["ClassificationModule"]
