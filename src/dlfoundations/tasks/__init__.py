"""LightningModules, one per task (not per model): a net from the zoo is passed in."""

from dlfoundations.tasks.classification import ClassificationModule
from dlfoundations.tasks.ridge import RidgeRegression, ridge_solve

__all__ = ["ClassificationModule", "RidgeRegression", "ridge_solve"]
