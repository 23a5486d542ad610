"""Per-label decision thresholds: from a file (written by hand, or by an evaluation), or chosen on
validation data by a rule (what training stores in the model file)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..errors import ECGFounderError

__all__ = ["read_thresholds", "choose_thresholds", "parse_threshold_rule"]


def parse_threshold_rule(rule: str) -> tuple[str, float]:
    """``youden``, ``sensitivity:0.9``, ``specificity:0.95`` or ``fixed:0.5`` -> (kind, value)."""
    kind, _, value = str(rule).partition(":")
    kind = kind.strip().lower()
    if kind == "youden" and not value:
        return kind, float("nan")
    if kind in ("sensitivity", "specificity", "fixed"):
        try:
            v = float(value)
        except ValueError:
            v = float("nan")
        if 0 <= v <= 1:
            return kind, v
    raise ECGFounderError(
        f"threshold rule {rule!r}: use youden, sensitivity:S, specificity:S or fixed:T (S, T between 0 and 1)"
    )


def _one(y: np.ndarray, score: np.ndarray, kind: str, target: float) -> float:
    from .evaluate import youden_threshold

    y = y.astype(bool)
    if kind == "fixed" or not y.any() or y.all():
        return 0.5 if kind != "fixed" else target
    if kind == "youden":
        return youden_threshold(y, score)
    cut = np.unique(score)[::-1]  # candidate thresholds, high to low (predict positive at >= t)
    pos, neg = score[y], score[~y]
    sens = (pos[None, :] >= cut[:, None]).mean(1)
    spec = (neg[None, :] < cut[:, None]).mean(1)
    if kind == "sensitivity":  # the highest threshold that reaches the sensitivity
        ok = np.flatnonzero(sens >= target)
        return float(cut[ok[0]]) if len(ok) else float(cut[-1])
    ok = np.flatnonzero(spec >= target)  # the lowest threshold that keeps the specificity
    return float(cut[ok[-1]]) if len(ok) else float(cut[0])


def choose_thresholds(y: np.ndarray, probs: np.ndarray, rule: str = "youden") -> list[float]:
    """One threshold per label column of ``probs`` (N, L) against 0/1 ``y`` (N, L) by ``rule``
    (see :func:`parse_threshold_rule`); a label without positives or negatives gets 0.5."""
    kind, target = parse_threshold_rule(rule)
    y = np.asarray(y)
    probs = np.asarray(probs, dtype=np.float64)
    return [_one(y[:, j], probs[:, j], kind, target) for j in range(probs.shape[1])]


def read_thresholds(path: str) -> dict[str, float]:
    """A JSON object label -> threshold, or a CSV with columns label,threshold."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ECGFounderError(f"{path}: cannot read thresholds ({exc.strerror or exc})") from None
    try:
        if path.lower().endswith(".json"):
            return {str(k): float(v) for k, v in json.loads(text).items()}
        rows = list(csv.DictReader(text.splitlines()))
        return {r["label"]: float(r["threshold"]) for r in rows}
    except (ValueError, KeyError, AttributeError) as exc:
        raise ECGFounderError(
            f"{path}: cannot read thresholds ({exc}); expected JSON "
            "{label: threshold} or CSV label,threshold"
        ) from None
