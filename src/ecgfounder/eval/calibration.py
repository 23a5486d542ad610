"""Calibration: reliability (Brier score, ECE, curve) and temperature scaling."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["calibration", "fit_temperature", "apply_temperature"]


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Brier score, expected calibration error (equal-width bins) and the reliability curve."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece, curve = 0.0, []
    for b in range(bins):
        m = which == b
        if m.any():
            conf, acc = float(p[m].mean()), float(y[m].mean())
            ece += m.mean() * abs(conf - acc)
            curve.append({"bin": b, "n": int(m.sum()), "mean_predicted": conf, "observed": acc})
    return {"brier": float(np.mean((p - y) ** 2)), "ece": float(ece), "reliability": curve}


def fit_temperature(y: np.ndarray, probs: np.ndarray) -> float:
    """One temperature T for all labels minimising the binary cross-entropy of
    sigmoid(logit(p) / T) (temperature scaling, Guo et al. 2017). Fit it on validation data and
    apply it to test data: fitting and scoring on the same records flatters calibration."""
    from scipy.optimize import minimize_scalar

    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    logits = np.log(p / (1 - p)).ravel()
    t = np.asarray(y, dtype=np.float64).ravel()

    def nll(log_temp: float) -> float:
        z = logits / np.exp(log_temp)
        return float(np.mean(np.logaddexp(0, z) - t * z))

    res = minimize_scalar(nll, bounds=(-3, 3), method="bounded")
    return float(np.exp(res.x))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    return 1 / (1 + np.exp(-np.log(p / (1 - p)) / temperature))
