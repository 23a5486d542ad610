"""Comparing models scored on the SAME records: paired bootstrap and DeLong's test.

Two models' AUROCs on one test set are correlated (same records, same hard cases), so their
difference must be judged paired: every bootstrap resample draws the records once and scores
every model on them (:func:`paired_bootstrap`), and DeLong, DeLong & Clarke-Pearson (1988) give
the variance of a difference of correlated AUROCs in closed form from the placement values
(:func:`delong`; the fast algorithm of Sun & Xu 2014, midranks for ties).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .bootstrap import RankedScores, resample_weights

__all__ = ["DeLongResult", "delong", "midranks", "paired_bootstrap", "macro_f1_rows"]


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    i = 0
    n = len(x)
    while i < n:
        j = i
        while j < n and xs[j] == xs[i]:
            j += 1
        ranks[order[i:j]] = 0.5 * (i + j - 1) + 1
        i = j
    return ranks


@dataclass(frozen=True)
class DeLongResult:
    """AUROCs of the models (``auc``), their covariance, and for the pair (a, b) the difference
    ``auc[a] - auc[b]`` with its standard error, z, two-sided p and normal confidence interval."""

    auc: np.ndarray
    cov: np.ndarray
    diff: float
    se: float
    z: float
    p: float
    low: float
    high: float


def delong(
    y: np.ndarray, scores: Sequence[np.ndarray], a: int = 0, b: int = 1, ci: float = 0.95
) -> DeLongResult:
    """DeLong's test for AUROC(scores[a]) - AUROC(scores[b]) on the same records (``y`` 0/1)."""
    y = np.asarray(y).astype(bool)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        raise ValueError(f"DeLong needs at least 2 positives and 2 negatives (got {m} and {n})")
    k = len(scores)
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    auc = np.empty(k)
    for r, s in enumerate(scores):
        s = np.asarray(s, dtype=np.float64)
        tx, ty, tz = midranks(s[pos]), midranks(s[neg]), midranks(np.concatenate([s[pos], s[neg]]))
        auc[r] = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
        v10[r] = (tz[:m] - tx) / n  # placement of each positive among the negatives
        v01[r] = 1.0 - (tz[m:] - ty) / m
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    diff = float(auc[a] - auc[b])
    var = float(cov[a, a] + cov[b, b] - 2 * cov[a, b])
    se = float(np.sqrt(max(var, 0.0)))
    zq = stats.norm.ppf(1 - (1 - ci) / 2)
    if se == 0:
        z, p = (0.0, 1.0) if diff == 0 else (float(np.sign(diff) * np.inf), 0.0)
    else:
        z = diff / se
        p = float(2 * stats.norm.sf(abs(z)))
    return DeLongResult(auc, cov, diff, se, float(z), p, diff - zq * se, diff + zq * se)


def macro_f1_rows(y: np.ndarray, pred: np.ndarray, n_classes: int, w: np.ndarray) -> np.ndarray:
    """Macro F1 over classes of class predictions ``pred`` against class indices ``y``, per row
    of resample weights ``w`` (B, N) (NaN for a class absent and never predicted in a resample)."""
    f1 = []
    for c in range(n_classes):
        t, p = y == c, pred == c
        tp = w @ (t & p).astype(w.dtype)
        fp = w @ (~t & p).astype(w.dtype)
        fn = w @ (t & ~p).astype(w.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1.append(np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan))
    return np.nanmean(np.stack(f1, axis=1), axis=1)


def paired_bootstrap(
    y: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    extra: Mapping[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, float]]]:
    """Per model, per label: AUROC and average precision on every resample of the records, the
    SAME resamples for every model (patients drawn when ``groups``, integer codes, are given).

    ``y``: (N, L) 0/1; ``outputs``: model -> (N, L) scores. ``extra``: name -> f(y, scores, w)
    giving one value per resample row (e.g. macro F1). Returns (draws, points): ``draws[model][m]``
    of shape (B, L) or (B,), ``points[model][m]`` the estimate on all records (weights 1)."""
    y = np.asarray(y)
    n, n_labels = y.shape
    rng = np.random.default_rng(seed)
    w = resample_weights(n, n_boot, rng, groups)
    ones = np.ones((1, n), dtype=np.float32)
    draws: dict[str, dict[str, np.ndarray]] = {}
    points: dict[str, dict[str, np.ndarray]] = {}
    for name, out in outputs.items():
        out = np.asarray(out, dtype=np.float64)
        auc = np.full((n_boot, n_labels), np.nan)
        ap = np.full((n_boot, n_labels), np.nan)
        p_auc = np.full(n_labels, np.nan)
        p_ap = np.full(n_labels, np.nan)
        for j in range(n_labels):
            ranked = RankedScores(y[:, j], out[:, j])
            auc[:, j], ap[:, j] = ranked.auroc_ap(w)
            a1, p1 = ranked.auroc_ap(ones)
            p_auc[j], p_ap[j] = a1[0], p1[0]
        draws[name] = {"auroc": auc, "ap": ap}
        points[name] = {"auroc": p_auc, "ap": p_ap}
        for key, fn in (extra or {}).items():
            draws[name][key] = fn(y, out, w)
            points[name][key] = fn(y, out, ones)
    return draws, points  # type: ignore[return-value]
