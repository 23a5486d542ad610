"""Evaluation layer: metrics."""

from .metrics import auroc, f1_scores, task_metrics

__all__ = ["auroc", "f1_scores", "task_metrics"]
