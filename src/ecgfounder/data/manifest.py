"""Training manifests: which file, which labels, which split.

The general way in is a CSV with a ``path`` column (relative paths are taken from the CSV's
folder), one column per label (or one ``label`` column for a multi-class task, or numeric targets
for regression), and optionally ``split`` (``train``/``val``/``test``) and ``patient_id``.
:func:`cinc2017_manifest` and :func:`cinc2021_manifest` build one from those data sets' own layouts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGFounderError
from ..records import record_ids

__all__ = [
    "Manifest",
    "load_manifest",
    "cinc2017_manifest",
    "cinc2021_manifest",
    "ptbxl_manifest",
    "ludb_manifest",
    "code15_manifest",
    "CODE15_LABELS",
    "assign_splits",
    "CINC2017_CLASSES",
    "PTBXL_GROUPS",
]

#: The six abnormalities labelled in CODE-15% (exams.csv) and CODE-test.
CODE15_LABELS = ("1dAVb", "RBBB", "LBBB", "SB", "ST", "AF")

#: PTB-XL statement groups (Wagner et al. 2020 benchmark tasks).
PTBXL_GROUPS = ("all", "diagnostic", "superdiagnostic", "subdiagnostic", "form", "rhythm")

#: CinC 2017 classes in REFERENCE.csv order of meaning, with readable names.
CINC2017_CLASSES = {"N": "normal", "A": "AF", "O": "other", "~": "noisy"}


class Manifest:
    """A table of records: ``paths``, a label matrix/vector ``y``, ``splits`` and label names.

    ``task``: ``multiclass`` (``y`` int class index, -1 unknown), ``multilabel`` (``y`` float 0/1
    matrix), ``regression`` (``y`` float matrix).

    ``ids``: each record's stable id, the same wherever the data set sits (split files and joins use
    it): the layout's own (CinC record names, PTB-XL ``ecg_id``, CODE ``exam_id``, LUDB ``ID``), a
    manifest's ``record`` column, else the path relative to the records' deepest common folder
    (:func:`ecgfounder.records.record_ids`).
    """

    def __init__(
        self,
        paths: Sequence[str],
        y: np.ndarray,
        labels: Sequence[str],
        task: str,
        splits: Sequence[str],
        patients: Sequence[str] | None = None,
        dropped: Sequence[tuple[str, str]] = (),
        ids: Sequence[str] | None = None,
    ) -> None:
        if task not in ("multiclass", "multilabel", "regression"):
            raise ValueError(f"task must be multiclass, multilabel or regression (got {task!r})")
        self.paths = [str(p) for p in paths]
        self.y = np.asarray(y)
        self.labels = list(labels)
        self.task = task
        self.splits = np.asarray(list(splits), dtype=object)
        self.patients = list(patients) if patients is not None else None
        self.dropped = list(dropped)  # (path, reason) of records of the source left out
        self.ids = [str(i) for i in ids] if ids is not None else record_ids(self.paths)
        if (
            len(self.paths) != len(self.y)
            or len(self.splits) != len(self.paths)
            or len(self.ids) != len(self.paths)
        ):
            raise ValueError("paths, ids, targets and splits differ in length")
        if len(set(self.ids)) != len(self.ids):
            twice = _first_duplicate(self.ids)
            raise ECGFounderError(f"record id {twice!r} names two records of the manifest")

    def __len__(self) -> int:
        return len(self.paths)

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def subset(self, index: np.ndarray) -> Manifest:
        return Manifest(
            [self.paths[i] for i in index],
            self.y[index],
            self.labels,
            self.task,
            self.splits[index],
            [self.patients[i] for i in index] if self.patients else None,
            self.dropped,
            [self.ids[i] for i in index],
        )

    def with_splits(self, splits: Sequence[str]) -> Manifest:
        """The same records with other splits."""
        return Manifest(
            self.paths, self.y, self.labels, self.task, splits, self.patients, self.dropped, self.ids
        )

    def write_split(self, split: str, out_dir: str | Path) -> tuple[Path, Path]:
        """``manifest.csv`` (a ``path`` column, for ``ecgfounder predict``) and ``labels.csv``
        (``record`` + one 0/1 column per label, for ``ecgfounder evaluate``) of one split."""
        import pandas as pd

        from ..io.sources import Source

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        idx = self.indices(split)
        # absolute, so that the manifest works from its own folder and predict's record ids match
        paths = []
        for i in idx:
            src = Source.from_key(self.paths[i])
            full = str(Path(src.path).resolve())
            paths.append(full if src.index is None else f"{full}[{src.index}]")
        pd.DataFrame({"path": paths}).to_csv(out / "manifest.csv", index=False)
        table = pd.DataFrame({"record": paths})
        for j, name in enumerate(self.labels):
            if self.task == "multiclass":
                table[name] = (self.y[idx] == j).astype(int)
            else:
                table[name] = self.y[idx][:, j]
        table.to_csv(out / "labels.csv", index=False)
        return out / "manifest.csv", out / "labels.csv"

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for p in self.paths:
            h.update(p.encode())
            h.update(b"\0")
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"records": len(self), "task": self.task, "labels": self.labels}
        for split in ("train", "val", "test"):
            out[split] = int((self.splits == split).sum())
        out["dropped"] = len(self.dropped)
        return out

    def group(self, groups: dict[str, str]) -> Manifest:
        """Labels merged into groups: ``groups`` maps a label to its group name, ``"*"`` every label
        not named (absent: such labels are dropped). Multi-label: a group is positive when any of
        its labels is; multi-class: each class becomes its group's class."""
        default = groups.get("*")
        target = {lab: groups.get(lab, default) for lab in self.labels}
        names = sorted({g for g in target.values() if g is not None})
        if not names:
            raise ECGFounderError("the label groups leave no label")
        if self.task == "multiclass":
            lookup = np.array(
                [names.index(target[lab]) if target[lab] is not None else -1 for lab in self.labels] + [-1]
            )
            y = lookup[np.where(self.y >= 0, self.y, len(self.labels))]
            keep = np.flatnonzero(y >= 0)
            dropped = self.dropped + [
                (self.paths[i], "its class is in no group") for i in np.flatnonzero(y < 0) if self.y[i] >= 0
            ]
            return Manifest(
                [self.paths[i] for i in keep],
                y[keep],
                names,
                self.task,
                self.splits[keep],
                [self.patients[i] for i in keep] if self.patients else None,
                dropped,
                [self.ids[i] for i in keep],
            )
        if self.task != "multilabel":
            raise ECGFounderError("label groups apply to classification tasks")
        y = np.stack(
            [
                np.nanmax(np.where([[target[lab] == g for lab in self.labels]], self.y, 0.0), axis=1)
                for g in names
            ],
            axis=1,
        ).astype(np.float32)
        return Manifest(self.paths, y, names, self.task, self.splits, self.patients, self.dropped, self.ids)


def _first_duplicate(values: Sequence[str]) -> str:
    """The first value of ``values`` seen twice."""
    seen: set[str] = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    raise ValueError("no duplicate")


def _folder(folder: str | Path, layout: str) -> Path:
    """``folder`` as a Path, or the error that names the real cause: it does not exist, or is a file."""
    path = Path(folder)
    if not path.exists():
        raise ECGFounderError(f"{folder}: no such folder (the {layout} data set's folder)")
    if not path.is_dir():
        raise ECGFounderError(f"{folder}: is a file, not the {layout} data set's folder")
    return path


def assign_splits(
    n: int,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    groups: Sequence[str] | None = None,
    strata: np.ndarray | None = None,
) -> np.ndarray:
    """Deterministic random splits. With ``groups`` (patient ids) every patient's records land in one
    split. With ``strata`` (class indices) each class is split in the same proportions."""
    rng = np.random.default_rng(seed)
    splits = np.empty(n, dtype=object)
    if groups is not None:
        uniq = sorted(set(groups))
        order = rng.permutation(len(uniq))
        n_test = int(round(test_fraction * len(uniq)))
        n_val = int(round(val_fraction * len(uniq)))
        split_of = {}
        for rank, gi in enumerate(order):
            split_of[uniq[gi]] = "test" if rank < n_test else ("val" if rank < n_test + n_val else "train")
        return np.array([split_of[g] for g in groups], dtype=object)
    buckets = [np.arange(n)] if strata is None else [np.flatnonzero(strata == c) for c in np.unique(strata)]
    for idx in buckets:
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        n_val = int(round(val_fraction * len(idx)))
        splits[idx[:n_test]] = "test"
        splits[idx[n_test : n_test + n_val]] = "val"
        splits[idx[n_test + n_val :]] = "train"
    return splits


def load_manifest(
    path: str | Path,
    *,
    task: str = "multilabel",
    label_columns: Sequence[str] | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Manifest:
    """Read a manifest CSV. Label columns: ``label_columns``, else every column other than
    ``path``, ``split``, ``patient_id``, ``record`` (multi-class: the ``label`` column). Without a
    ``split`` column, splits are drawn (patient-level when ``patient_id`` exists)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ECGFounderError(
            f"{path}: no such file (the manifest CSV)"
            if not path.exists()
            else f"{path}: is a folder, not a manifest CSV"
        )
    try:
        df = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001
        raise ECGFounderError(f"{path}: cannot read manifest ({exc})") from None
    if "path" not in df.columns:
        raise ECGFounderError(f"{path}: a manifest needs a 'path' column (has {', '.join(df.columns)})")
    paths = [str(p if Path(p).is_absolute() else path.parent / p) for p in df["path"].astype(str)]
    meta = {"path", "split", "patient_id", "record"}
    if task == "multiclass":
        col = (label_columns or ["label"])[0]
        if col not in df.columns:
            raise ECGFounderError(f"{path}: multi-class task needs a {col!r} column")
        classes = sorted(df[col].dropna().astype(str).unique())
        lookup = {c: i for i, c in enumerate(classes)}
        y = np.array([lookup.get(str(v), -1) if pd.notna(v) else -1 for v in df[col]], dtype=np.int64)
        labels = classes
    else:
        cols = list(label_columns) if label_columns else [c for c in df.columns if c not in meta]
        missing = [c for c in cols if c not in df.columns]
        if missing or not cols:
            raise ECGFounderError(f"{path}: label columns missing: {missing or 'none found'}")
        y = df[cols].to_numpy(dtype=np.float32)
        labels = cols
    patients = df["patient_id"].astype(str).tolist() if "patient_id" in df.columns else None
    ids = df["record"].astype(str).tolist() if "record" in df.columns else None
    if "split" in df.columns:
        splits = df["split"].astype(str).str.lower().to_numpy(dtype=object)
    else:
        splits = assign_splits(
            len(df),
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            groups=patients,
            strata=y if task == "multiclass" else None,
        )
    return Manifest(paths, y, labels, task, splits, patients, ids=ids)


def cinc2017_manifest(
    folder: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    limit: int | None = None,
) -> Manifest:
    """The CinC 2017 layout (``REFERENCE.csv``: record,class with N, A, O, ~): a multi-class task
    with readable class names, stratified splits (the set has no patient ids). ``limit`` keeps a
    stratified random subset of that many records."""
    folder = _folder(folder, "CinC 2017")
    ref = folder / "REFERENCE.csv"
    if not ref.is_file():
        raise ECGFounderError(f"{folder}: no REFERENCE.csv (not the CinC 2017 layout)")
    names, classes = [], []
    for line in ref.read_text().splitlines():
        if line.strip():
            name, cls = line.strip().split(",")[:2]
            names.append(name)
            classes.append(cls)
    codes = list(CINC2017_CLASSES)
    y = np.array([codes.index(c) for c in classes], dtype=np.int64)
    if limit is not None and limit < len(names):
        keep = assign_splits(
            len(names), seed=seed + 1, val_fraction=0, test_fraction=limit / len(names), strata=y
        )
        idx = np.flatnonzero(keep == "test")
        names, y = [names[i] for i in idx], y[idx]
    splits = assign_splits(
        len(names), seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, strata=y
    )
    return Manifest(
        [str(folder / f"{n}.hea") for n in names],
        y,
        list(CINC2017_CLASSES.values()),
        "multiclass",
        splits,
        ids=names,
    )


def cinc2021_manifest(
    folder: str | Path,
    *,
    codes: Sequence[str] | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Manifest:
    """WFDB records with CinC 2020/2021 headers (``# Dx: code,code``): a multi-label task over the
    SNOMED CT codes (``codes``, default every code seen), random splits."""
    from ..errors import ECGInputError
    from ..io import header_comments, parse_header_comments

    folder = _folder(folder, "CinC 2020/2021")
    headers = sorted(folder.rglob("*.hea"))
    if not headers:
        raise ECGFounderError(f"{folder}: no WFDB headers")
    per_record, unreadable = [], []
    for h in headers:
        try:  # the comments as text: a record line wfdb refuses (Georgia's "E00009.mat 12 ...") loses nothing
            comments = header_comments(h)
        except ECGInputError as exc:
            unreadable.append((str(h), exc.reason))
            continue
        per_record.append((h, set(parse_header_comments(comments)["codes"])))
    labels = list(codes) if codes else sorted(set().union(*(c for _, c in per_record)))
    y = np.array([[float(code in c) for code in labels] for _, c in per_record], dtype=np.float32)
    splits = assign_splits(len(per_record), seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    stems = [h.stem for h, _ in per_record]  # CinC record names (A0001, HR00001, E00001, ...) are unique
    ids = (
        stems
        if len(set(stems)) == len(stems)
        else [h.relative_to(folder).with_suffix("").as_posix() for h, _ in per_record]
    )
    return Manifest(
        [str(h) for h, _ in per_record], y, labels, "multilabel", splits, dropped=unreadable, ids=ids
    )


def ptbxl_manifest(
    folder: str | Path, *, group: str = "superdiagnostic", rate: int = 500, min_likelihood: float = 0.0
) -> Manifest:
    """PTB-XL (``ptbxl_database.csv``, ``scp_statements.csv``, ``records500/`` or ``records100/``):
    a multi-label task over a statement group, with the standard folds (1-8 train, 9 validation,
    10 test; folds keep each patient in one fold).

    Groups: ``all`` (every SCP statement), ``diagnostic``, ``superdiagnostic`` (NORM, MI, STTC, CD,
    HYP), ``subdiagnostic``, ``form``, ``rhythm``. A statement counts when its likelihood is above
    ``min_likelihood`` (PTB-XL's 0 means "present, likelihood unknown", kept by default). Records
    with no statement of the group keep all-zero targets, as in the benchmark's data.
    """
    import ast

    import pandas as pd

    folder = _folder(folder, "PTB-XL")
    db_path, scp_path = folder / "ptbxl_database.csv", folder / "scp_statements.csv"
    if not db_path.is_file() or not scp_path.is_file():
        raise ECGFounderError(f"{folder}: ptbxl_database.csv and scp_statements.csv expected (PTB-XL layout)")
    if group not in PTBXL_GROUPS:
        raise ECGFounderError(f"unknown PTB-XL group {group!r}; one of {', '.join(PTBXL_GROUPS)}")
    db = pd.read_csv(db_path, index_col="ecg_id")
    scp = pd.read_csv(scp_path, index_col=0)

    def statements(raw: str) -> set[str]:
        codes = ast.literal_eval(raw)  # a dict literal such as {'NORM': 100.0, 'SR': 0.0}
        keep = {c for c, lik in codes.items() if float(lik) >= min_likelihood and c in scp.index}
        if group == "all":
            return keep
        if group == "form":
            return {c for c in keep if scp.loc[c].get("form") == 1}
        if group == "rhythm":
            return {c for c in keep if scp.loc[c].get("rhythm") == 1}
        diag = {c for c in keep if scp.loc[c].get("diagnostic") == 1}
        if group == "diagnostic":
            return diag
        column = "diagnostic_class" if group == "superdiagnostic" else "diagnostic_subclass"
        return {str(scp.loc[c, column]) for c in diag if pd.notna(scp.loc[c, column])}

    sets = [statements(s) for s in db["scp_codes"]]
    labels = sorted(set().union(*sets))
    y = np.array([[float(lab in st) for lab in labels] for st in sets], dtype=np.float32)
    column = "filename_hr" if rate == 500 else "filename_lr"
    paths = [str(folder / f"{name}.hea") for name in db[column]]
    fold = db["strat_fold"].astype(int).to_numpy()
    splits = np.where(fold == 10, "test", np.where(fold == 9, "val", "train")).astype(object)
    patients = db["patient_id"].astype(int).astype(str).tolist() if "patient_id" in db.columns else None
    return Manifest(paths, y, labels, "multilabel", splits, patients, ids=[str(int(i)) for i in db.index])


def ludb_manifest(
    folder: str | Path,
    *,
    columns: Sequence[str] = ("Rhythms",),
    task: str = "multilabel",
    min_count: int = 1,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Manifest:
    """LUDB (``ludb.csv`` + ``data/N.hea``): a multi-label task over the statements of the chosen
    ``ludb.csv`` columns (a cell may hold several, one a line; statements seen fewer than
    ``min_count`` times are left out); ``task="multiclass"`` for columns with one statement per
    record (the electric axis; records with none or several are dropped and named in
    ``Manifest.dropped``); or ``task="regression"`` on ``Age``. Random splits (LUDB has one record
    per patient)."""
    import pandas as pd

    folder = _folder(folder, "LUDB")
    table = folder / "ludb.csv"
    if not table.is_file():
        raise ECGFounderError(f"{folder}: no ludb.csv (not the LUDB layout)")
    df = pd.read_csv(table)
    paths = [str(folder / "data" / f"{int(i)}.hea") for i in df["ID"]]
    ids = [str(int(i)) for i in df["ID"]]
    splits = assign_splits(len(df), seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    if task == "regression":
        # LUDB writes ages above 89 as ">89" (de-identification): read as 90, documented in training.md
        raw = df["Age"].astype(str).str.strip().str.rstrip("+").str.replace(r"^>\s*89$", "90", regex=True)
        ages = pd.to_numeric(raw, errors="coerce")
        keep = np.flatnonzero(ages.notna().to_numpy())
        y = ages.to_numpy(dtype=np.float32)[keep, None]
        dropped = [
            (paths[i], f"age {df['Age'].iloc[i]!r} is not a number") for i in np.flatnonzero(ages.isna())
        ]
        return Manifest(
            [paths[i] for i in keep],
            y,
            ["age"],
            "regression",
            splits[keep],
            dropped=dropped,
            ids=[ids[i] for i in keep],
        )
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ECGFounderError(f"{table}: no column(s) {missing}; columns: {', '.join(df.columns)}")
    sets = []
    for _, row in df.iterrows():
        st: set[str] = set()
        for c in columns:
            if pd.notna(row[c]):
                st |= {line.strip().rstrip(".") for line in str(row[c]).splitlines() if line.strip()}
        sets.append(st)
    if task == "multiclass":  # one statement per record (e.g. the electric axis): its classes
        classes = sorted({next(iter(st)) for st in sets if len(st) == 1})
        keep = [i for i, st in enumerate(sets) if len(st) == 1]
        dropped = [
            (paths[i], "no statement" if not st else f"{len(st)} statements for a one-of-N task")
            for i, st in enumerate(sets)
            if len(st) != 1
        ]
        y = np.array([classes.index(next(iter(sets[i]))) for i in keep], dtype=np.int64)
        return Manifest(
            [paths[i] for i in keep],
            y,
            classes,
            "multiclass",
            splits[keep],
            dropped=dropped,
            ids=[ids[i] for i in keep],
        )
    counts: dict[str, int] = {}
    for st in sets:
        for lab in st:
            counts[lab] = counts.get(lab, 0) + 1
    labels = sorted(lab for lab, n in counts.items() if n >= min_count)
    y = np.array([[float(lab in st) for lab in labels] for st in sets], dtype=np.float32)
    return Manifest(paths, y, labels, "multilabel", splits, ids=ids)


def code15_manifest(
    folder: str | Path,
    *,
    labels: Sequence[str] = CODE15_LABELS,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Manifest:
    """CODE-15% (``exams.csv`` + ``exams_part*.hdf5``): a multi-label task over the six
    abnormalities, patient-level random splits. Records are addressed as ``file.hdf5[i]`` (exam
    ``i`` of the file, found through each file's ``exam_id`` dataset). A CODE-test folder
    (``ecg_tracings.hdf5`` + ``annotations/gold_standard.csv``) gives its 827 exams as a test split."""
    import h5py
    import pandas as pd

    folder = _folder(folder, "CODE-15%/CODE-test")
    table = folder / "exams.csv"
    gold = folder / "annotations" / "gold_standard.csv"
    if not table.is_file() and gold.is_file() and (folder / "ecg_tracings.hdf5").is_file():
        # CODE-test: ecg_tracings.hdf5 (827 exams, no ids) and the cardiologists' consensus in
        # annotations/gold_standard.csv, row i describing exam i. Kept whole as the test split.
        df = pd.read_csv(gold)
        tracings = folder / "ecg_tracings.hdf5"
        y = df[list(labels)].astype(float).to_numpy(dtype=np.float32)
        return Manifest(
            [f"{tracings}[{i}]" for i in range(len(df))],
            y,
            list(labels),
            "multilabel",
            np.array(["test"] * len(df), dtype=object),
            ids=[f"code-test/{i}" for i in range(len(df))],
        )
    if not table.is_file():
        raise ECGFounderError(
            f"{folder}: neither exams.csv (CODE-15%) nor ecg_tracings.hdf5 + "
            "annotations/gold_standard.csv (CODE-test)"
        )
    df = pd.read_csv(table)
    where: dict[int, str] = {}
    for h5 in sorted(folder.glob("*.hdf5")) + sorted(folder.glob("*.h5")):
        with h5py.File(h5, "r") as fh:
            if "exam_id" not in fh:
                continue
            for i, exam in enumerate(np.asarray(fh["exam_id"]).astype(np.int64)):
                if exam > 0:  # CODE-15 pads the last part with exam_id 0
                    where[int(exam)] = f"{h5}[{i}]"
    keep = [i for i, exam in enumerate(df["exam_id"].astype(np.int64)) if int(exam) in where]
    if not keep:
        raise ECGFounderError(f"{folder}: no exam of exams.csv was found in the HDF5 files")
    df = df.iloc[keep].reset_index(drop=True)
    y = df[list(labels)].astype(float).to_numpy(dtype=np.float32)
    patients = df["patient_id"].astype(str).tolist() if "patient_id" in df.columns else None
    splits = assign_splits(
        len(df), seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, groups=patients
    )
    return Manifest(
        [where[int(e)] for e in df["exam_id"]],
        y,
        list(labels),
        "multilabel",
        splits,
        patients,
        ids=[str(int(e)) for e in df["exam_id"]],
    )
