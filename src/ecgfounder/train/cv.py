"""K-fold cross-validation: one training run per fold, out-of-fold predictions pooled and evaluated.

The records outside the test split are divided into K folds (a split file with a ``fold`` column,
or one drawn here by :func:`~ecgfounder.data.splits.make_splits` and saved as ``splits.csv``). Run k
trains on the other folds and validates on fold k; its **last** checkpoint (not the one selected on
fold k, which would make fold k's predictions optimistic) predicts fold k. Every non-test record
is predicted exactly once, by the one model that never saw it:

* ``oof_predictions.csv`` (``record``, ``fold``, one column per label: probabilities, or
  predictions in target units) and ``oof_labels.csv`` (``record`` + the truth, 0/1 or continuous),
  the tables ``ecgfounder evaluate`` takes;
* ``pooled/``: the evaluation of all out-of-fold predictions with bootstrap CIs;
* ``folds.csv``: the headline metrics of each fold, and their mean and standard deviation;
* ``fold-k/``: each fold's ordinary run directory.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGFounderError
from .config import TrainConfig

__all__ = ["cross_validate"]


def cross_validate(cfg: TrainConfig, folds: int, *, n_boot: int = 1000) -> Path:
    """Train ``folds`` runs as described above; returns the output directory."""
    import pandas as pd

    from ..data.splits import make_splits, read_splits, write_splits
    from ..eval.evaluate import evaluate_tables
    from ..models import load_model
    from .loop import Trainer, _record_outputs
    from .sources import build_manifest

    if folds < 2:
        raise ECGFounderError("cross-validation needs at least 2 folds")
    if cfg.shards:
        raise ECGFounderError("cross-validation reads a manifest or a data-set layout, not shards")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.splits:
        split_path = Path(cfg.splits)
        table = read_splits(split_path)
        if "fold" not in table.columns or table["fold"].max() + 1 != folds:
            raise ECGFounderError(
                f"{split_path}: needs a fold column with {folds} folds (`ecgfounder split --folds {folds}`)"
            )
    else:
        man = build_manifest(dataclasses.replace(cfg, splits=None, fold=None))
        table = make_splits(
            [str(Path(p).resolve()) for p in man.paths],
            seed=cfg.data_seed(),
            val_fraction=0.0,
            test_fraction=cfg.test_fraction,
            folds=folds,
            patients=man.patients,
            ids=man.ids,
        )
        split_path = write_splits(table, out / "splits.csv")
    rows: list[dict[str, Any]] = []
    truth_rows: list[dict[str, Any]] = []
    per_fold: list[dict[str, Any]] = []
    labels: list[str] = []
    task = cfg.task
    for k in range(folds):
        fcfg = dataclasses.replace(cfg, splits=str(split_path), fold=k, output_dir=str(out / f"fold-{k}"))
        trainer = Trainer(fcfg)
        run_dir = trainer.fit()
        labels = list(trainer.labels)
        man = build_manifest(fcfg)
        last = load_model(run_dir / "last.safetensors").to(trainer.run.device)
        idx = trainer.data.split["val"]  # type: ignore[attr-defined]
        pred, y = _record_outputs(
            last, trainer.data.records("val", last), fcfg, trainer.run.device, trainer.linear
        )
        if task == "regression":
            pred = pred * trainer.target_std + trainer.target_mean
            y = y * trainer.target_std + trainer.target_mean
        elif task == "multiclass":
            y = np.eye(len(labels))[np.asarray(y, dtype=np.int64)]
        for i, p, t in zip(idx, pred, y):
            record = str(Path(man.paths[i]).resolve())
            rows.append({"record": record, "fold": k, **dict(zip(labels, map(float, np.atleast_1d(p))))})
            truth_rows.append({"record": record, **dict(zip(labels, map(float, np.atleast_1d(t))))})
        fold_eval = evaluate_tables(
            pd.DataFrame(rows[-len(idx) :]), pd.DataFrame(truth_rows[-len(idx) :]), n_boot=0, task=_task(task)
        )
        per_fold.append({"fold": k, "records": len(idx), **_headline(fold_eval)})
        trainer.run.log(f"fold {k}: {len(idx)} out-of-fold records predicted by the last checkpoint")
    oof = pd.DataFrame(rows)
    truth = pd.DataFrame(truth_rows)
    oof.to_csv(out / "oof_predictions.csv", index=False)
    truth.to_csv(out / "oof_labels.csv", index=False)
    pooled = evaluate_tables(oof.drop(columns=["fold"]), truth, n_boot=n_boot, task=_task(task))
    pooled.write(out / "pooled")
    folds_table = pd.DataFrame(per_fold)
    numeric = folds_table.drop(columns=["fold", "records"]).astype(float)
    summary = pd.concat(
        [
            folds_table,
            pd.DataFrame(
                [
                    {"fold": "mean", "records": folds_table["records"].sum(), **numeric.mean().to_dict()},
                    {"fold": "sd", **numeric.std(ddof=1).to_dict()},
                ]
            ),
        ]
    )
    summary.to_csv(out / "folds.csv", index=False)
    (out / "cv.json").write_text(
        json.dumps(
            {
                "folds": folds,
                "records": int(len(oof)),
                "task": task,
                "labels": labels,
                "splits": str(split_path),
                "pooled": _headline(pooled),
            },
            indent=2,
            default=float,
        )
    )
    return out


def _task(task: str) -> str:
    return "regression" if task == "regression" else "classification"


def _headline(report: Any) -> dict[str, float]:
    """The summary figures of an evaluation: macro AUROC/AUPRC/F1 (classification) or per-target
    MAE/RMSE/r/R² (regression)."""
    if hasattr(report, "macro"):
        return {f"macro_{k}": float(report.macro.get(k, float("nan"))) for k in ("auroc", "auprc", "f1")}
    out = {}
    for row in report.labels:
        for k in ("mae", "rmse", "bias", "pearson_r", "r2"):
            out[f"{row['label']}_{k}" if len(report.labels) > 1 else k] = float(row[k])
    return out
