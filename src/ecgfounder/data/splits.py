"""Split files: deterministic train/validation/test (and K-fold) assignments written once and reused
by every task on the same data, so that the test records never depend on the task.

A split file is a CSV with ``path`` (the record as a manifest names it), ``split`` (train, val,
test) and, with K folds, ``fold`` (0..K-1 for the records outside the test split; -1 for test).
With ``patient_id`` every patient's records share a split and a fold. The assignment depends only
on the set of records (sorted), the patient ids, the optional stratification column and the seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGFounderError
from .manifest import Manifest

__all__ = ["make_splits", "write_splits", "read_splits", "apply_splits"]


def _order(keys: Sequence[str], seed: int) -> np.ndarray:
    """A permutation of ``keys`` that depends on the keys and the seed only (not their order)."""
    digest = [hashlib.sha256(f"{seed}\0{k}".encode()).hexdigest() for k in keys]
    return np.argsort(np.array(digest), kind="stable")


def make_splits(paths: Sequence[str], *, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2,
                folds: int = 0, patients: Sequence[str] | None = None,
                strata: Sequence[Any] | None = None) -> Any:
    """A DataFrame ``path, split[, fold][, patient_id]``. Units of assignment are patients when
    ``patients`` is given, else records; with ``strata`` (one value per record; a patient takes the
    value of its first record) each stratum is split in the same proportions."""
    import pandas as pd

    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ECGFounderError("need 0 <= val, test fractions and val + test < 1")
    if folds == 1 or folds < 0:
        raise ECGFounderError("folds must be 0 (none) or at least 2")
    paths = [str(p) for p in paths]
    if len(set(paths)) != len(paths):
        raise ECGFounderError("the same record is listed twice")
    units = list(patients) if patients is not None else paths
    unit_ids = sorted(set(units))
    first: dict[str, int] = {}
    for i, u in enumerate(units):
        first.setdefault(u, i)
    unit_strata = [strata[first[u]] if strata is not None else "" for u in unit_ids]
    split_of: dict[str, str] = {}
    fold_of: dict[str, int] = {}
    for value in sorted(set(map(str, unit_strata))):
        members = [u for u, s in zip(unit_ids, unit_strata) if str(s) == value]
        members = [members[i] for i in _order(members, seed)]
        n_test = int(round(test_fraction * len(members)))
        n_val = 0 if folds else int(round(val_fraction * len(members)))
        for rank, u in enumerate(members):
            split_of[u] = "test" if rank < n_test else ("val" if rank < n_test + n_val else "train")
            if folds:
                fold_of[u] = -1 if rank < n_test else (rank - n_test) % folds
    out = pd.DataFrame({"path": paths, "split": [split_of[u] for u in units]})
    if folds:
        out["fold"] = [fold_of[u] for u in units]
    if patients is not None:
        out["patient_id"] = list(patients)
    return out


def write_splits(table: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


def read_splits(path: str | Path) -> Any:
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001
        raise ECGFounderError(f"{path}: cannot read the split file ({exc})") from None
    if not {"path", "split"} <= set(table.columns):
        raise ECGFounderError(f"{path}: a split file needs 'path' and 'split' columns (has {', '.join(table.columns)})")
    bad = sorted(set(table["split"].astype(str)) - {"train", "val", "test"})
    if bad:
        raise ECGFounderError(f"{path}: unknown split name(s) {', '.join(bad[:5])} (train, val, test)")
    return table


def apply_splits(man: Manifest, splits: Any, *, fold: int | None = None, source: str = "split file") -> Manifest:
    """``man`` with the splits of a split file (joined on the resolved path). With ``fold`` k: the
    records of fold k are the validation split, the other folds train, test stays test. Records of
    the manifest missing from the split file are an error naming them."""
    def key(p: str) -> str:
        return str(Path(p).resolve()) if not p.endswith("]") else p

    lookup = {key(str(p)): (str(s), int(f) if "fold" in splits.columns else -2)
              for p, s, f in zip(splits["path"], splits["split"],
                                 splits["fold"] if "fold" in splits.columns else [0] * len(splits))}
    missing = [p for p in man.paths if key(p) not in lookup]
    if missing:
        raise ECGFounderError(f"{source}: {len(missing)} record(s) of the data are not in it, e.g. {missing[0]}")
    new = []
    for p in man.paths:
        split, f = lookup[key(p)]
        if fold is not None:
            if f == -2:
                raise ECGFounderError(f"{source}: has no fold column (write it with `ecgfounder split --folds K`)")
            if split != "test":
                split = "val" if f == fold else "train"
        new.append(split)
    return Manifest(man.paths, man.y, man.labels, man.task, new, man.patients)
