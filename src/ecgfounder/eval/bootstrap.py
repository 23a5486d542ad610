"""Weighted metrics for bootstrap resamples, all resamples at once.

A bootstrap resample is a vector of multiplicities (how often each record was drawn). Every metric
here takes a (B, N) matrix of such weights and returns B values, so 1,000 resamples cost a few
array passes instead of 1,000 metric calls. With all weights 1 they equal the usual definitions
(scikit-learn's ``roc_auc_score`` and ``average_precision_score``, ties included).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "resample_weights",
    "RankedScores",
    "weighted_auroc",
    "weighted_average_precision",
    "weighted_confusion",
]


def resample_weights(
    n: int, n_boot: int, rng: np.random.Generator, groups: np.ndarray | None = None, dtype: type = np.float32
) -> np.ndarray:
    """(n_boot, n) multiplicities of ``n`` records in ``n_boot`` bootstrap resamples. With ``groups``
    (patient ids, integer-coded 0..G-1) patients are drawn and each record gets its patient's count."""
    if groups is None:
        idx = rng.integers(0, n, size=(n_boot, n))
        flat = (idx + np.arange(n_boot)[:, None] * n).ravel()
        return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(dtype)
    g = int(groups.max()) + 1
    idx = rng.integers(0, g, size=(n_boot, g))
    flat = (idx + np.arange(n_boot)[:, None] * g).ravel()
    counts = np.bincount(flat, minlength=n_boot * g).reshape(n_boot, g)
    return counts[:, groups].astype(dtype)


def _tie_groups(sorted_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) index of each run of equal values in a sorted array (end exclusive)."""
    change = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(sorted_scores)]])
    return starts, ends


class RankedScores:
    """One label's scores sorted once (ascending) with their tie groups, reused for every resample."""

    def __init__(self, y: np.ndarray, score: np.ndarray) -> None:
        self.order = np.argsort(score, kind="mergesort")
        self.y = np.asarray(y)[self.order].astype(np.float32)
        self.starts, self.ends = _tie_groups(np.asarray(score)[self.order])

    def auroc_ap(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(AUROC, average precision) for each row of resample weights ``w`` (B, N); compiled
        when numba is installed, NumPy otherwise (same numbers)."""
        try:
            from ._kernels import auroc_ap_rows
        except ImportError:
            return self._auroc_ap_numpy(w)
        last = np.zeros(len(self.order), dtype=np.bool_)
        last[self.ends - 1] = True
        return auroc_ap_rows(np.ascontiguousarray(w), self.order, self.y.astype(np.float64), last)

    def _auroc_ap_numpy(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(AUROC, average precision) for each row of resample weights ``w`` (B, N).

        Cumulative weights of all and of positive records in ascending score order give, per tie
        group g: positives and negatives in the group and below it. AUROC = sum_g pos_g (neg_below_g
        + neg_g / 2) / (P Q). Average precision: at threshold s_g the predicted positives are the
        groups >= g, so precision_g = (P - pos_below_g) / (W - all_below_g), and recall steps by
        pos_g / P: AP = sum_g precision_g pos_g / P.
        """
        ww = np.ascontiguousarray(w[:, self.order], dtype=np.float32)
        cw = np.cumsum(ww, axis=1)  # exact: integer counts < 2**24
        cp = np.cumsum(ww * self.y, axis=1)
        zero = np.zeros((len(w), 1), dtype=np.float64)
        below_w = np.concatenate([zero, cw[:, self.starts[1:] - 1]], axis=1)
        below_p = np.concatenate([zero, cp[:, self.starts[1:] - 1]], axis=1)
        upto_w = cw[:, self.ends - 1].astype(np.float64)
        upto_p = cp[:, self.ends - 1].astype(np.float64)
        pos_g = upto_p - below_p
        neg_g = (upto_w - upto_p) - (below_w - below_p)
        total_p = upto_p[:, -1]
        total_w = upto_w[:, -1]
        total_n = total_w - total_p
        with np.errstate(invalid="ignore", divide="ignore"):
            auroc = (pos_g * ((below_w - below_p) + 0.5 * neg_g)).sum(axis=1) / (total_p * total_n)
            precision = (total_p[:, None] - below_p) / (total_w[:, None] - below_w)
            ap = np.where(pos_g > 0, pos_g * precision, 0.0).sum(axis=1) / total_p
        auroc = np.where((total_p > 0) & (total_n > 0), auroc, np.nan)
        ap = np.where(total_p > 0, ap, np.nan)
        return auroc, ap


def weighted_auroc(y: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUROC per row of weights ``w`` (B, N): P(score_pos > score_neg) + 0.5 P(tie), NaN where a
    resample has no positive or no negative."""
    return RankedScores(y, score).auroc_ap(w)[0]


def weighted_average_precision(y: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average precision (area under the step PR curve, as scikit-learn) per row of ``w``."""
    return RankedScores(y, score).auroc_ap(w)[1]


def weighted_confusion(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted TP, FP, TN, FN per row of ``w`` for boolean predictions."""
    y = y.astype(bool)
    pred = pred.astype(bool)
    cols = np.stack([y & pred, ~y & pred, ~y & ~pred, y & ~pred], axis=1).astype(w.dtype)
    tp, fp, tn, fn = (w @ cols).T.astype(np.float64)
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
