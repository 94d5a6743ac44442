"""Lightning callbacks: a step progress bar, end-of-run plots, scheduled evaluation, BN folding,
gradient flow, RNG state."""

from dlfoundations.callbacks.curves import TrainingCurves
from dlfoundations.callbacks.eval_schedule import EvalSchedule
from dlfoundations.callbacks.fold_bn import FoldBatchNorm
from dlfoundations.callbacks.gradient_flow import GradientFlow
from dlfoundations.callbacks.progress import StepProgressBar
from dlfoundations.callbacks.rng_state import RNGState

__all__ = ["EvalSchedule", "FoldBatchNorm", "GradientFlow", "RNGState", "StepProgressBar", "TrainingCurves"]
