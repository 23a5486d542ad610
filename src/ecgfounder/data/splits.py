"""Split files: deterministic train/validation/test (and K-fold) assignments written once and reused
by every task on the same data, so that the test records never depend on the task.

A split file is a CSV with ``record`` (the record's stable id, see :mod:`ecgfounder.records`),
``path`` (where it was when the file was written, for reading by eye), ``split`` (train, val, test)
and, with K folds, ``fold`` (0..K-1 for the records outside the test split; -1 for test). With
``patient_id`` every patient's records share a split and a fold. The assignment depends only on the
set of record ids, the patient ids, the optional stratification column and the seed: never on
where the files sit (a copy, a symlink or another working directory gives the same splits).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGFounderError
from ..records import match_records, record_ids
from .manifest import Manifest

__all__ = ["make_splits", "write_splits", "read_splits", "apply_splits", "budget_draw", "check_leakage"]


def _order(keys: Sequence[str], seed: int) -> np.ndarray:
    """A permutation of ``keys`` that depends on the keys and the seed only (not their order)."""
    digest = [hashlib.sha256(f"{seed}\0{k}".encode()).hexdigest() for k in keys]
    return np.argsort(np.array(digest), kind="stable")


def make_splits(
    paths: Sequence[str],
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    folds: int = 0,
    patients: Sequence[str] | None = None,
    strata: Sequence[Any] | None = None,
    ids: Sequence[str] | None = None,
) -> Any:
    """A DataFrame ``record, path, split[, fold][, patient_id]``. ``ids``: the records' stable ids
    (default: :func:`~ecgfounder.records.record_ids` of ``paths``); the assignment hashes them, never
    the paths. Units of assignment are patients when ``patients`` is given, else records; with
    ``strata`` (one value per record; a patient takes the value of its first record) each stratum is
    split in the same proportions."""
    import pandas as pd

    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ECGFounderError("need 0 <= val, test fractions and val + test < 1")
    if folds == 1 or folds < 0:
        raise ECGFounderError("folds must be 0 (none) or at least 2")
    paths = [str(p) for p in paths]
    ids = [str(i) for i in ids] if ids is not None else record_ids(paths)
    if len(ids) != len(paths):
        raise ECGFounderError("one id per record is needed")
    if len(set(ids)) != len(ids):
        raise ECGFounderError("the same record is listed twice")
    units = list(patients) if patients is not None else ids
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
    out = pd.DataFrame({"record": ids, "path": paths, "split": [split_of[u] for u in units]})
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
        table = pd.read_csv(
            path, dtype={"record": str, "path": str, "patient_id": str}
        )  # ids stay text: "007"
    except Exception as exc:  # noqa: BLE001
        raise ECGFounderError(f"{path}: cannot read the split file ({exc})") from None
    if "split" not in table.columns or not {"record", "path"} & set(table.columns):
        raise ECGFounderError(
            f"{path}: a split file needs 'record' (or 'path') and 'split' columns "
            f"(has {', '.join(map(str, table.columns))})"
        )
    bad = sorted(set(table["split"].astype(str)) - {"train", "val", "test"})
    if bad:
        raise ECGFounderError(f"{path}: unknown split name(s) {', '.join(bad[:5])} (train, val, test)")
    return table


def apply_splits(
    man: Manifest, splits: Any, *, fold: int | None = None, source: str = "split file"
) -> Manifest:
    """``man`` with the splits of a split file, joined on the record ids (a file without a
    ``record`` column, from an older version, is joined on its paths: see
    :func:`~ecgfounder.records.match_records`). With ``fold`` k: the records of fold k are the
    validation split, the other folds train, test stays test. Records of the manifest missing from
    the split file are an error naming them."""
    has_fold = "fold" in splits.columns
    pairs: dict[int, int] = {}
    if "record" in splits.columns:
        theirs = splits["record"].astype(str).tolist()
        lookup = {k: j for j, k in enumerate(theirs)}
        pairs = {i: lookup[k] for i, k in enumerate(man.ids) if k in lookup}
    if len(pairs) < len(man) and "path" in splits.columns:
        # ids written for another selection of the records (another common folder): their paths
        match = match_records(man.paths, splits["path"].astype(str).tolist())
        pairs = {**dict(match.pairs), **pairs} if len(match.pairs) > len(pairs) else pairs
    missing = [man.paths[i] for i in range(len(man)) if i not in pairs]
    if missing:
        raise ECGFounderError(
            f"{source}: {len(missing)} of {len(man)} record(s) of the data are not in it, "
            f"e.g. {man.ids[man.paths.index(missing[0])]} ({missing[0]}); was it written for "
            "this data set?"
        )
    split_col = splits["split"].astype(str).tolist()
    fold_col = splits["fold"].astype(int).tolist() if has_fold else None
    new = []
    for i in range(len(man)):
        j = pairs[i]
        split = split_col[j]
        if fold is not None:
            if fold_col is None:
                raise ECGFounderError(
                    f"{source}: has no fold column (write it with `ecgfounder split --folds K`)"
                )
            if split != "test":
                split = "val" if fold_col[j] == fold else "train"
        new.append(split)
    return man.with_splits(new)


def budget_draw(y: np.ndarray, budget: int, draw: int, seed: int = 0) -> tuple[np.ndarray, bool]:
    """Positions of ``budget`` records among the training records whose targets are ``y`` (class
    indices, -1 unknown; or a label/target matrix): draw number ``draw`` of that budget.

    The records are put in one seeded order, stratified for class indices (each record ranked by
    its shuffled place within its class divided by the class size, so every run of consecutive
    records holds the classes in proportion); draw ``k`` is the ``k``-th run of ``budget`` records.
    Draws of one budget are therefore disjoint while ``(draw + 1) * budget`` records exist; past
    that a draw is a fresh stratified sample seeded by ``(seed, budget, draw)`` and overlaps
    the others. The order does not depend on the budget, so draw 0 of a smaller budget is a subset of
    draw 0 of a larger one (nested curves). Returns the positions (sorted) and whether the draw is
    disjoint from the budget's other draws."""
    n = len(y)
    if budget <= 0:
        raise ECGFounderError(f"label budget must be positive (got {budget})")
    if budget >= n:
        return np.arange(n), draw == 0

    def stratified_order(rng: np.random.Generator) -> np.ndarray:
        if y.ndim != 1:
            return rng.permutation(n)
        rank = np.empty(n, dtype=np.float64)
        for c in np.unique(y):
            members = np.flatnonzero(y == c)
            rank[rng.permutation(members)] = (np.arange(len(members)) + rng.random()) / len(members)
        return np.argsort(rank, kind="stable")

    if (draw + 1) * budget <= n:
        order = stratified_order(np.random.default_rng([seed, 4099]))
        return np.sort(order[draw * budget : (draw + 1) * budget]), True
    order = stratified_order(np.random.default_rng([seed, 4099, budget, draw]))
    return np.sort(order[:budget]), False


def check_leakage(man: Manifest, *, source: str = "the data") -> None:
    """Raise :class:`ECGFounderError` when a record (the same id or the same file) or a patient
    sits in two splits: a model evaluated on records it, or the same patient's other records,
    was fitted on. Names the first cases found."""
    problems: list[str] = []
    for what, keys in (("record", man.ids), ("file", [str(Path(p).resolve()) for p in man.paths])):
        seen: dict[str, str] = {}
        for key, split in zip(keys, man.splits):
            other = seen.setdefault(key, str(split))
            if other != split:
                problems.append(f"{what} {key} is in both {other} and {split}")
    if man.patients is not None:
        by_patient: dict[str, set[str]] = {}
        for patient, split in zip(man.patients, man.splits):
            if patient not in (None, "", "nan"):
                by_patient.setdefault(str(patient), set()).add(str(split))
        problems += [
            f"patient {p} has records in {' and '.join(sorted(s))}"
            for p, s in by_patient.items()
            if len(s) > 1
        ]
    if problems:
        raise ECGFounderError(
            f"{source}: leakage between splits ({len(problems)} case(s)): {'; '.join(problems[:5])}"
            + (" ..." if len(problems) > 5 else "")
        )
