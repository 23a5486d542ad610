"""Evaluation of continuous targets (age, intervals...): MAE, RMSE, bias, Pearson r and R², each with
a percentile bootstrap CI over records (or patients), plus scatter and Bland-Altman plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .bootstrap import resample_weights
from .report_files import write_tables

__all__ = ["RegressionReport", "evaluate_regression", "regression_metrics"]

_METRICS = ("mae", "rmse", "bias", "pearson_r", "r2")


def regression_metrics(y: np.ndarray, pred: np.ndarray, w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Weighted metrics for each row of weights ``w`` (B, N) (one unweighted row when ``None``).
    ``bias`` is mean(pred - y): positive when the predictions run high."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if w is None:
        w = np.ones((1, len(y)))
    total = w.sum(1)
    err = pred - y
    mean = lambda v: (w @ v) / total  # noqa: E731
    my, mp = mean(y), mean(pred)
    vy = mean(y * y) - my**2
    vp = mean(pred * pred) - mp**2
    cov = mean(y * pred) - my * mp
    mse = mean(err * err)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "mae": mean(np.abs(err)),
            "rmse": np.sqrt(mse),
            "bias": mean(err),
            "pearson_r": cov / np.sqrt(vy * vp),
            "r2": 1 - mse / vy,
        }


@dataclass
class RegressionReport:
    labels: list[dict[str, Any]]
    n_records: int
    n_boot: int
    level: str
    extra: dict[str, Any] = field(default_factory=dict)
    arrays: tuple[np.ndarray, np.ndarray, list[str]] | None = field(default=None, repr=False)
    #: with ``keep_draws``: target -> metric -> the bootstrap values, in draw order
    draws: dict[str, dict[str, np.ndarray]] | None = field(default=None, repr=False)

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.labels)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": "regression",
            "records": self.n_records,
            "bootstrap": self.n_boot,
            "level": self.level,
            "labels": self.labels,
            **self.extra,
        }

    def to_markdown(self) -> str:
        def fmt(row: dict[str, Any], key: str) -> str:
            v, lo, hi = row[key], row[f"{key}_lo"], row[f"{key}_hi"]
            if not np.isfinite(v):
                return "n/a"
            # brackets and a comma: bias, r and R² can be negative ("-0.859 [-3.455, 1.710]")
            return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else f"{v:.3f}"

        lines = [
            f"{self.n_records} records; 95% CIs [low, high] from {self.n_boot} bootstrap resamples of "
            f"{self.level}s; bias = mean(prediction - truth).",
            "",
            "| target | n | MAE | RMSE | bias | Pearson r | R² |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in self.labels:
            lines.append(f"| {r['label']} | {r['n']} | " + " | ".join(fmt(r, k) for k in _METRICS) + " |")
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
        """metrics.csv, metrics.json, metrics.md and (``plots``) scatter.png, bland_altman.png."""
        out = Path(out_dir)
        paths = write_tables(self, out)
        if plots and self.arrays is not None:
            paths.update(plot_regression(*self.arrays, out))
        return paths


def evaluate_regression(
    y: np.ndarray,
    pred: np.ndarray,
    labels: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
    ci: float = 0.95,
    keep_draws: bool = False,
) -> RegressionReport:
    """Evaluate predictions ``pred`` (N, L) of continuous targets ``y`` (N, L); rows where a target is
    missing (NaN) are left out for that target. ``keep_draws`` keeps the bootstrap values in
    ``report.draws``."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    rng = np.random.default_rng(seed)
    alpha = (1 - ci) / 2
    codes = None
    if groups is not None:
        _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    rows = []
    draws: dict[str, dict[str, np.ndarray]] = {}
    for j, name in enumerate(labels):
        keep = np.isfinite(y[:, j]) & np.isfinite(pred[:, j])
        yj, pj = y[keep, j], pred[keep, j]
        row: dict[str, Any] = {"label": name, "n": int(keep.sum())}
        point = regression_metrics(yj, pj)
        boot: dict[str, list[np.ndarray]] = {k: [] for k in _METRICS}
        if len(yj) >= 2:
            for start in range(0, n_boot, 200):
                b = min(200, n_boot - start)
                w = resample_weights(len(yj), b, rng, codes[keep] if codes is not None else None)
                for k, v in regression_metrics(yj, pj, np.asarray(w, dtype=np.float64)).items():
                    boot[k].append(v)
        draws[name] = {k: np.concatenate(boot[k]) if boot[k] else np.full(n_boot, np.nan) for k in _METRICS}
        for k in _METRICS:
            row[k] = float(point[k][0]) if len(yj) else float("nan")
            v = draws[name][k]
            v = v[np.isfinite(v)]
            row[f"{k}_lo"], row[f"{k}_hi"] = (
                (float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha)))
                if len(v)
                else (float("nan"), float("nan"))
            )
        rows.append(row)
    report = RegressionReport(rows, len(y), n_boot, "patient" if groups is not None else "record")
    report.arrays = (y, pred, list(labels))
    if keep_draws:
        report.draws = draws
    return report


def plot_regression(y: np.ndarray, pred: np.ndarray, labels: Sequence[str], out: Path) -> dict[str, Path]:
    """scatter.png (prediction against truth, identity line) and bland_altman.png (difference
    against mean, bias and 95% limits of agreement), one panel per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    paths = {}
    for kind in ("scatter", "bland_altman"):
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4), squeeze=False)
        for j, (ax, name) in enumerate(zip(axes[0], labels)):
            keep = np.isfinite(y[:, j]) & np.isfinite(pred[:, j])
            t, p = y[keep, j], pred[keep, j]
            if kind == "scatter":
                ax.scatter(t, p, s=8, alpha=0.6)
                lo, hi = (
                    (float(min(t.min(), p.min())), float(max(t.max(), p.max()))) if len(t) else (0.0, 1.0)
                )
                ax.plot([lo, hi], [lo, hi], "k--", lw=1)
                ax.set_xlabel(f"{name} (truth)")
                ax.set_ylabel(f"{name} (predicted)")
            else:
                m, d = (t + p) / 2, p - t
                bias, sd = (
                    (float(d.mean()), float(d.std(ddof=1))) if len(d) > 1 else (float("nan"), float("nan"))
                )
                ax.scatter(m, d, s=8, alpha=0.6)
                for v, style in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
                    ax.axhline(v, color="k", ls=style, lw=1)
                ax.set_xlabel(f"mean of prediction and truth ({name})")
                ax.set_ylabel("prediction - truth")
                ax.set_title(
                    f"bias {bias:.2f}, limits {bias - 1.96 * sd:.2f} to {bias + 1.96 * sd:.2f}", fontsize=9
                )
        fig.tight_layout()
        paths[kind] = out / f"{kind}.png"
        fig.savefig(paths[kind], dpi=110)
        plt.close(fig)
    return paths
