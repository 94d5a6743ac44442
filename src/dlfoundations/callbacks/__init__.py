"""Lightning callbacks: end-of-run plots, BN folding (and, later, gradient flow)."""

from dlfoundations.callbacks.curves import TrainingCurves
from dlfoundations.callbacks.fold_bn import FoldBatchNorm

__all__ = ["FoldBatchNorm", "TrainingCurves"]
