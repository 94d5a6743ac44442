"""Analysis as pure functions: BN folding (and, later, parameter/FLOP counts, receptive fields)."""

from dlfoundations.analysis.fold_bn import FoldPlan, fold_batchnorm, load_into_twin, plan_batchnorm_folding
from dlfoundations.analysis.timing import median_seconds

__all__ = ["FoldPlan", "fold_batchnorm", "load_into_twin", "median_seconds", "plan_batchnorm_folding"]
