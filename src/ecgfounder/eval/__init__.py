"""Evaluation layer: metrics, vectorised bootstrap confidence intervals, reports."""

from .calibration import apply_temperature, calibration, fit_temperature
from .evaluate import EvalReport, evaluate_arrays, evaluate_tables, read_table, youden_threshold
from .metrics import auroc, f1_scores, task_metrics
from .regression import RegressionReport, evaluate_regression
from .subgroups import SubgroupReport, evaluate_subgroups, evaluate_subgroups_tables

__all__ = [
    "auroc",
    "f1_scores",
    "task_metrics",
    "evaluate_arrays",
    "evaluate_tables",
    "EvalReport",
    "calibration",
    "fit_temperature",
    "apply_temperature",
    "youden_threshold",
    "read_table",
    "evaluate_regression",
    "RegressionReport",
    "SubgroupReport",
    "evaluate_subgroups",
    "evaluate_subgroups_tables",
]
