"""Split-conformal prediction: label sets with a coverage guarantee, fitted on held-out data.

The guarantee (Vovk et al.; Angelopoulos & Bates, "A Gentle Introduction to Conformal Prediction"):
if the calibration records and a new record are exchangeable (drawn from the same distribution, in
no particular order), then for **one-of-N** models ``P(true class in the set) >= 1 - alpha``,
averaged over records (not per record, nor per subgroup). The score is ``1 - p(true class)``; the
threshold is its ``ceil((n + 1)(1 - alpha)) / n`` empirical quantile over the n calibration records;
a new record's set holds every class with ``1 - p <= threshold``.

For **multi-label** models each label gets its own threshold from the calibration records where it
is present, so that ``P(label reported | label present) >= 1 - alpha`` per label: a controlled
false-negative rate (the false positives are what the data give; they are reported on evaluation).

A set that is empty, or larger than ``max_set_size``, is an ``abstain``: the model does not know.
Nothing here holds under a distribution shift (another device, site or population than the
calibration data): calibrate on data like the data the model will see.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGFounderError, clip

__all__ = ["ConformalSets", "fit_conformal", "fit_conformal_tables", "load_conformal"]


@dataclass
class ConformalSets:
    kind: str  # "multiclass" or "multilabel"
    alpha: float
    labels: list[str]
    thresholds: list[float]  # multiclass: one score threshold; multilabel: per-label probability threshold
    n_calibration: int
    max_set_size: int

    def sets(self, probs: np.ndarray) -> list[list[str]]:
        """The label set of each row of ``probs`` (N, L), most probable first."""
        probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
        if probs.shape[1] != len(self.labels):
            raise ValueError(f"{probs.shape[1]} probability columns for {len(self.labels)} conformal labels")
        if self.kind == "multiclass":
            member = (1.0 - probs) <= self.thresholds[0]
        else:
            member = probs >= np.asarray(self.thresholds)
        out = []
        for row, m in zip(probs, member):
            idx = np.flatnonzero(m)
            out.append([self.labels[i] for i in idx[np.argsort(-row[idx], kind="stable")]])
        return out

    def abstain(self, label_set: Sequence[str]) -> bool:
        return len(label_set) == 0 or len(label_set) > self.max_set_size

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps({"conformal": asdict(self), "guarantee": self.guarantee()}, indent=2))
        return path

    def guarantee(self) -> str:
        if self.kind == "multiclass":
            return (
                f"P(true class in the set) >= {1 - self.alpha:g} on average over records exchangeable "
                f"with the {self.n_calibration} calibration records"
            )
        return (
            f"per label, P(label in the set | label present) >= {1 - self.alpha:g} for records "
            f"exchangeable with the calibration records"
        )


def load_conformal(path: str | Path) -> ConformalSets:
    try:
        blob = json.loads(Path(path).read_text())["conformal"]
        sets = ConformalSets(**blob)
        sets.labels = [str(v) for v in sets.labels]
        sets.thresholds = [float(v) for v in sets.thresholds]
        if (
            sets.kind not in ("multiclass", "multilabel")
            or not 0 < float(sets.alpha) < 1
            or len(sets.thresholds) != (1 if sets.kind == "multiclass" else len(sets.labels))
        ):
            raise ValueError("inconsistent fields")
        return sets
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ECGFounderError(
            f"{path}: not a conformal file written by `ecgfounder conformal` "
            f"({type(exc).__name__}: {clip(str(exc), 100)})"
        ) from None


def _quantile_level(n: int, alpha: float) -> float:
    return min(1.0, math.ceil((n + 1) * (1 - alpha)) / n)


def fit_conformal(
    probs: np.ndarray,
    y: np.ndarray,
    labels: Sequence[str],
    *,
    alpha: float = 0.1,
    kind: str = "auto",
    max_set_size: int | None = None,
) -> ConformalSets:
    """Fit on calibration probabilities ``probs`` (N, L) and 0/1 labels ``y`` (N, L). ``kind``:
    ``auto`` (one-of-N when every row of ``y`` has exactly one 1), ``multiclass`` or ``multilabel``."""
    if not 0 < alpha < 1:
        raise ECGFounderError(f"alpha must be between 0 and 1 (got {alpha})")
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if probs.shape != y.shape or probs.ndim != 2:
        raise ECGFounderError(f"probabilities {probs.shape} and labels {y.shape} differ in shape")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ECGFounderError("conformal labels must be 0 or 1")
    if kind == "auto":
        kind = "multiclass" if (y.sum(1) == 1).all() else "multilabel"
    n = len(y)
    if kind == "multiclass":
        if not (y.sum(1) == 1).all():
            raise ECGFounderError("one-of-N conformal sets need exactly one label per record")
        if n < math.ceil(1 / alpha) - 1:
            raise ECGFounderError(
                f"{n} calibration records are too few for alpha {alpha} (need >= {math.ceil(1 / alpha) - 1})"
            )
        scores = 1.0 - probs[y.astype(bool)]
        thresholds = [float(np.quantile(scores, _quantile_level(n, alpha), method="higher"))]
        size = max_set_size if max_set_size is not None else max(1, len(labels) // 2)
    elif kind == "multilabel":
        thresholds = []
        for j in range(y.shape[1]):
            pos = probs[y[:, j] == 1, j]
            if len(pos) < math.ceil(1 / alpha) - 1:
                thresholds.append(0.0)  # too few positives to bound the miss rate: always reported
                continue
            q = float(np.quantile(1.0 - pos, _quantile_level(len(pos), alpha), method="higher"))
            thresholds.append(1.0 - q)
        size = max_set_size if max_set_size is not None else len(labels)
    else:
        raise ECGFounderError(f"kind must be auto, multiclass or multilabel (got {kind!r})")
    return ConformalSets(kind, float(alpha), list(labels), thresholds, n, int(size))


def fit_conformal_tables(
    predictions: Any,
    labels: Any,
    *,
    alpha: float = 0.1,
    id_column: str = "record",
    kind: str = "auto",
    max_set_size: int | None = None,
) -> ConformalSets:
    """Fit on a predictions table (``ecgfounder predict`` output) and a 0/1 labels table."""
    from .evaluate import read_table

    pred = predictions if not isinstance(predictions, (str, Path)) else read_table(predictions)
    true = labels if not isinstance(labels, (str, Path)) else read_table(labels)
    if "error" in pred.columns:
        err = pred["error"]
        pred = pred[err.isna() | (err.astype(str) == "")]
    merged = pred.merge(true, on=id_column, suffixes=("", "__true"))
    cols = [c for c in true.columns if c != id_column and c in pred.columns]
    if merged.empty or not cols:
        raise ECGFounderError("the predictions and labels tables share no records or labels")
    return fit_conformal(
        merged[cols].to_numpy(float),
        merged[[f"{c}__true" for c in cols]].to_numpy(float),
        cols,
        alpha=alpha,
        kind=kind,
        max_set_size=max_set_size,
    )
