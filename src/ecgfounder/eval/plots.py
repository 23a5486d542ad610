"""ROC, precision-recall and reliability plots for an evaluation (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_curves", "roc_points", "pr_points"]


def roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0) to (1, 1)."""
    order = np.argsort(-score, kind="mergesort")
    s, yy = score[order], y[order].astype(bool)
    last = np.concatenate([np.flatnonzero(np.diff(s)), [len(s) - 1]])
    tp = np.cumsum(yy)[last]
    fp = np.cumsum(~yy)[last]
    return np.concatenate([[0], fp / max(1, (~yy).sum())]), np.concatenate([[0], tp / max(1, yy.sum())])


def pr_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct threshold."""
    order = np.argsort(-score, kind="mergesort")
    s, yy = score[order], y[order].astype(bool)
    last = np.concatenate([np.flatnonzero(np.diff(s)), [len(s) - 1]])
    tp = np.cumsum(yy)[last]
    return tp / max(1, yy.sum()), tp / (last + 1)


def plot_curves(
    y: np.ndarray, probs: np.ndarray, labels: Sequence[str], out_dir: str | Path, max_labels: int = 12
) -> dict[str, Path]:
    """``roc.png``, ``pr.png`` and ``reliability.png`` for the labels with positives (the
    ``max_labels`` most frequent when there are more)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .bootstrap import RankedScores
    from .calibration import calibration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pos = y.sum(0)
    usable = [j for j in np.argsort(-pos) if 0 < pos[j] < len(y)][:max_labels]
    paths = {}
    ones = np.ones((1, len(y)), dtype=np.float32)
    for kind in ("roc", "pr", "reliability"):
        fig, ax = plt.subplots(figsize=(5.5, 5), dpi=120)
        for j in usable:
            au, ap = RankedScores(y[:, j], probs[:, j]).auroc_ap(ones)
            if kind == "roc":
                fpr, tpr = roc_points(y[:, j], probs[:, j])
                ax.plot(fpr, tpr, lw=1.3, label=f"{labels[j]} (AUROC {au[0]:.3f})")
            elif kind == "pr":
                rec, prec = pr_points(y[:, j], probs[:, j])
                ax.step(rec, prec, where="post", lw=1.3, label=f"{labels[j]} (AP {ap[0]:.3f})")
            else:
                cal = calibration(y[:, j], probs[:, j])
                pts = cal["reliability"]
                ax.plot(
                    [p["mean_predicted"] for p in pts],
                    [p["observed"] for p in pts],
                    marker="o",
                    lw=1.3,
                    label=f"{labels[j]} (ECE {cal['ece']:.3f})",
                )
        if kind == "roc":
            ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
            ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
        elif kind == "pr":
            ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision-recall")
        else:
            ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
            ax.set(xlabel="mean predicted probability", ylabel="observed frequency", title="Reliability")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right" if kind != "pr" else "lower left")
        fig.tight_layout()
        paths[kind] = out / f"{kind}.png"
        fig.savefig(paths[kind])
        plt.close(fig)
    return paths
