"""Lightning callbacks: end-of-run plots, BN folding (and, later, gradient flow)."""

from dlfoundations.callbacks.curves import TrainingCurves
from dlfoundations.callbacks.fold_bn import FoldBatchNorm
from dlfoundations.callbacks.rng_state import RNGState

__all__ = ["FoldBatchNorm", "RNGState", "TrainingCurves"]
