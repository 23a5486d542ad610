"""Metrics for training and evaluation (NumPy; checked against scikit-learn's definitions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

__all__ = ["auroc", "f1_scores", "task_metrics"]


def auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN when a class is absent."""
    y = np.asarray(y_true).astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class F1 (0 where a class is neither present nor predicted, as scikit-learn's default)."""
    out = np.zeros(n_classes)
    for c in range(n_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        out[c] = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    return out


def task_metrics(task: str, y_true: np.ndarray, output: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Summary metrics; ``output``: class probabilities (multi-class), label probabilities
    (multi-label) or predictions in target units (regression)."""
    m: dict[str, Any] = {}
    if task == "multiclass":
        pred = output.argmax(1)
        f1 = f1_scores(y_true, pred, len(labels))
        m["accuracy"] = float(np.mean(pred == y_true))
        m["macro_f1"] = float(f1.mean())
        for name, value in zip(labels, f1):
            m[f"f1_{name}"] = float(value)
        aucs = [auroc(y_true == c, output[:, c]) for c in range(len(labels))]
        for name, value in zip(labels, aucs):
            m[f"auroc_{name}"] = value
        if set(labels) >= {"normal", "AF", "other"}:  # CinC 2017 challenge score: mean F1 of N, A, O
            m["challenge_f1"] = float(np.mean([f1[labels.index(c)] for c in ("normal", "AF", "other")]))
    elif task == "multilabel":
        aucs = np.array([auroc(y_true[:, j], output[:, j]) for j in range(y_true.shape[1])])
        m["macro_auroc"] = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")
        m["labels_with_positives"] = int(np.isfinite(aucs).sum())
    else:
        err = output - y_true
        m["mae"] = float(np.mean(np.abs(err)))
        m["rmse"] = float(np.sqrt(np.mean(err**2)))
    return m
