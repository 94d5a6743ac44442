"""Lightning callbacks: end-of-run plots (and, later, BN folding and gradient flow)."""

from dlfoundations.callbacks.curves import TrainingCurves

__all__ = ["TrainingCurves"]
