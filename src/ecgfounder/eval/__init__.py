"""Evaluation layer: metrics, vectorised bootstrap confidence intervals, reports."""

from .evaluate import EvalReport, calibration, evaluate_arrays, evaluate_tables, youden_threshold
from .metrics import auroc, f1_scores, task_metrics

__all__ = ["auroc", "f1_scores", "task_metrics", "evaluate_arrays", "evaluate_tables", "EvalReport",
           "calibration", "youden_threshold"]
