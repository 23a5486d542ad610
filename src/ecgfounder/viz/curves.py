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
