"""Training curves from a run's ``metrics.csv``: loss and validation metrics per epoch."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_training_curves"]


def plot_training_curves(metrics_csv: str | Path, out: str | Path) -> Path:
    """``out`` (PNG): the training loss per epoch on the left; the validation summary metrics
    (loss-like ones: MAE, RMSE) or scores (F1, AUROC, accuracy...) on the right. Per-label columns
    are left out so that the figure stays readable."""
    import pandas as pd
    from matplotlib.figure import Figure

    table = pd.read_csv(metrics_csv)
    fig = Figure(figsize=(10, 3.8))
    left, right = fig.subplots(1, 2)
    epochs = table["epoch"]
    if "train_loss" in table:
        left.plot(epochs, table["train_loss"], marker="o", label="training loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend(loc="best", fontsize=8)
    summary = [
        c
        for c in table.columns
        if c.startswith("val_") and not c.startswith(("val_f1_", "val_auroc_")) and table[c].notna().any()
    ]
    for c in summary:
        right.plot(epochs, table[c], marker=".", label=c[4:])
    right.set_xlabel("epoch")
    right.set_ylabel("validation")
    if summary:
        right.legend(loc="best", fontsize=8)
    else:
        right.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=right.transAxes)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    return out


def plot_comparison(per_label: list[dict], models: list[str], out: str | Path) -> Path:
    """``out`` (PNG): each label's test AUROC per model with its bootstrap interval, models side by
    side (the figure of ``ecgfounder compare``)."""
    import numpy as np
    from matplotlib.figure import Figure

    labels = list(dict.fromkeys(r["label"] for r in per_label))
    fig = Figure(figsize=(max(6.0, 1.2 * len(labels) * max(1, len(models)) ** 0.5 + 2), 4.2))
    ax = fig.subplots()
    width = 0.8 / max(1, len(models))
    for m, model in enumerate(models):
        rows = {r["label"]: r for r in per_label if r["model"] == model}
        x = np.arange(len(labels)) + (m - (len(models) - 1) / 2) * width
        point = np.array([rows[label]["auroc"] if label in rows else np.nan for label in labels])
        low = np.array([rows[label]["auroc_ci"][0] if label in rows else np.nan for label in labels])
        high = np.array([rows[label]["auroc_ci"][1] if label in rows else np.nan for label in labels])
        err = np.vstack([np.nan_to_num(point - low), np.nan_to_num(high - point)])
        ax.errorbar(x, point, yerr=err, fmt="o", capsize=3, label=model)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test AUROC (95% bootstrap CI)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    return Path(out)
