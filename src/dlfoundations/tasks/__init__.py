"""LightningModules, one per task (not per model): a net from the zoo is passed in. Tasks trained
by gradient steps run on one engine (:class:`GradientTask`); ridge is solved in closed form."""

from dlfoundations.tasks.classification import ClassificationModule
from dlfoundations.tasks.engine import GradientTask
from dlfoundations.tasks.ridge import RidgeRegression, ridge_solve

__all__ = ["ClassificationModule", "GradientTask", "RidgeRegression", "ridge_solve"]
