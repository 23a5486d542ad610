"""``ecgfounder split``: deterministic train/validation/test (and K-fold) assignments, written once."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]

_LAYOUTS = ("cinc2017", "cinc2021", "ludb", "code15", "ptbxl")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "split",
        help="deterministic train/val/test (and K-fold) assignments, reused by every task",
        description="Writes a split file (record, path, split[, fold][, patient_id]) that training "
        "configs read with `splits: FILE` (and `fold: k`). The test records depend on "
        "the record ids, the patient ids, the stratification column and the seed only, "
        "never on where the files sit: a record's id is the layout's own (CinC names, "
        "PTB-XL ecg_id, CODE exam_id, LUDB ID), a manifest's 'record' column, or its "
        "path relative to the deepest folder holding all the records.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="ECG files, folders, globs, a manifest CSV, or one layout such as ludb:DIR",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE.csv", help="the split file to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the assignment (default 0)")
    p.add_argument("--val", type=float, default=0.1, help="validation fraction (default 0.1; 0 with --folds)")
    p.add_argument("--test", type=float, default=0.2, help="test fraction (default 0.2)")
    p.add_argument("--folds", type=int, default=0, metavar="K", help="K folds over the non-test records")
    p.add_argument(
        "--patient-column",
        metavar="COLUMN",
        help="patient ids in the manifest CSV: all of a patient's records share a split and fold",
    )
    p.add_argument(
        "--stratify-column",
        metavar="COLUMN",
        help="a manifest CSV column to stratify on (chosen by you, so that it is the same for every task)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...data.splits import make_splits, write_splits
    from ...errors import ECGFounderError

    patients = strata = ids = None
    first = args.inputs[0]
    if len(args.inputs) == 1 and first.split(":", 1)[0] in _LAYOUTS and ":" in first:
        from ...train import build_manifest, load_config

        kind = first.split(":", 1)[0]
        cfg = load_config(
            None, {"dataset": first, "task": "multiclass" if kind == "cinc2017" else "multilabel"}
        )
        man = build_manifest(cfg)
        paths, patients, ids = man.paths, man.patients, man.ids
    elif (
        len(args.inputs) == 1
        and first.lower().endswith(".csv")
        and (args.patient_column or args.stratify_column)
    ):
        from pathlib import Path

        import pandas as pd

        df = pd.read_csv(first)
        if "path" not in df.columns:
            raise ECGFounderError(f"{first}: a manifest needs a 'path' column")
        for col in (args.patient_column, args.stratify_column):
            if col and col not in df.columns:
                raise ECGFounderError(f"{first}: no column {col!r}")
        paths = [str(p if Path(p).is_absolute() else Path(first).parent / p) for p in df["path"].astype(str)]
        patients = df[args.patient_column].astype(str).tolist() if args.patient_column else None
        strata = df[args.stratify_column].astype(str).tolist() if args.stratify_column else None
        ids = df["record"].astype(str).tolist() if "record" in df.columns else None
    else:
        from ...io.sources import expand_inputs

        paths = [s.key for s in expand_inputs(args.inputs)]
    if not paths:
        raise ECGFounderError("no records found in the inputs")
    from pathlib import Path

    paths = [str(Path(p).resolve()) if not p.endswith("]") else p for p in paths]
    table = make_splits(
        paths,
        seed=args.seed,
        val_fraction=0.0 if args.folds else args.val,
        test_fraction=args.test,
        folds=args.folds,
        patients=patients,
        strata=strata,
        ids=ids,
    )
    out = write_splits(table, args.output)
    counts = table["split"].value_counts().to_dict()
    print(
        f"{len(table)} records -> {out}: "
        + ", ".join(f"{k} {counts.get(k, 0)}" for k in ("train", "val", "test"))
        + (f"; {args.folds} folds" if args.folds else ""),
        file=sys.stderr,
    )
    return 0
