"""Lightning callbacks: a step progress bar, end-of-run plots, BN folding, gradient flow, RNG state."""

from dlfoundations.callbacks.curves import TrainingCurves
from dlfoundations.callbacks.fold_bn import FoldBatchNorm
from dlfoundations.callbacks.gradient_flow import GradientFlow
from dlfoundations.callbacks.progress import StepProgressBar
from dlfoundations.callbacks.rng_state import RNGState

__all__ = ["FoldBatchNorm", "GradientFlow", "RNGState", "StepProgressBar", "TrainingCurves"]
