"""Analysis as pure functions: BN folding, parameter/MAC/activation counts, receptive fields."""

from dlfoundations.analysis.counting import ModelCount, count_model
from dlfoundations.analysis.fold_bn import FoldPlan, fold_batchnorm, load_into_twin, plan_batchnorm_folding
from dlfoundations.analysis.receptive_field import (
    analytic_receptive_field,
    receptive_field_box,
    receptive_field_mask,
)
from dlfoundations.analysis.timing import median_seconds

__all__ = [
    "FoldPlan",
    "ModelCount",
    "analytic_receptive_field",
    "count_model",
    "fold_batchnorm",
    "load_into_twin",
    "median_seconds",
    "plan_batchnorm_folding",
    "receptive_field_box",
    "receptive_field_mask",
]
