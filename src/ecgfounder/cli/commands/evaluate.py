"""``ecgfounder evaluate``: per-label AUROC, AUPRC, sensitivity... with bootstrap 95% CIs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..common import read_thresholds

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="per-label AUROC, AUPRC, sensitivity... with bootstrap 95%% CIs")
    p.add_argument(
        "--predictions", required=True, help="output of `ecgfounder predict` (CSV, JSONL, Parquet)"
    )
    p.add_argument("--labels", required=True, help="table with the id column and one 0/1 column per label")
    p.add_argument(
        "--id-column", default="record", help="the column naming each record in both tables (default record)"
    )
    p.add_argument("--label-columns", help="comma-separated labels to evaluate (default: all shared)")
    p.add_argument("--patient-column", help="patient ids in the label table: bootstrap patients")
    p.add_argument(
        "--thresholds",
        default="youden",
        help="youden (default), a number, or a file of per-label thresholds (JSON or CSV)",
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (default 0)")
    p.add_argument(
        "--mapping",
        help="map 150-label predictions onto the label table's codes first: "
        "cinc2017, snomed_cinc2021, ptbxl_scp, ludb, or a mapping CSV",
    )
    p.add_argument(
        "--fit-temperature",
        nargs=2,
        metavar=("PREDICTIONS", "LABELS"),
        help="fit temperature scaling on these (validation) tables and apply it before evaluating",
    )
    p.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="auto (default): 0/1 labels are classes, continuous labels a regression target; "
        "classification refuses anything but 0/1",
    )
    p.add_argument(
        "--min-count",
        type=int,
        default=10,
        metavar="N",
        help="labels with fewer positives or negatives are marked and left out of macro means (default 10)",
    )
    p.add_argument(
        "--include-low-counts", action="store_true", help="average marked labels into the macro means"
    )
    p.add_argument(
        "--by",
        metavar="COLUMN[,COLUMN]",
        help="subgroups: every metric per group (sex, age band, site...) with CIs and the largest "
        "gap; columns from the labels or predictions table, or age/sex read from --records",
    )
    p.add_argument(
        "--age-bands",
        metavar="EDGES",
        default="40,60,80",
        help="age-band edges in years for an age column (default 40,60,80: <40, 40-59, 60-79, 80+)",
    )
    p.add_argument(
        "--records",
        nargs="+",
        metavar="INPUT",
        help="the ECG files (as given to predict) to read age and sex from, for --by age,sex",
    )
    p.add_argument(
        "--no-plots",
        action="store_true",
        help="no ROC, PR and reliability PNGs (regression: scatter and Bland-Altman)",
    )
    p.add_argument("--output-dir", default="evaluation", help="where metrics.csv/.json/.md and plots go")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...eval import evaluate_tables

    thresholds: Any = args.thresholds
    try:
        thresholds = float(thresholds)
    except ValueError:
        if thresholds != "youden":
            thresholds = [float(v) for v in read_thresholds(thresholds).values()]
    predictions: Any = args.predictions
    mapping = None
    if args.mapping:
        from ...eval import read_table
        from ...eval.mapping import load_mapping

        mapping = load_mapping(args.mapping)
        predictions = mapping.apply(read_table(args.predictions), id_column=args.id_column)
        for code, why in mapping.unmapped.items():
            print(f"note: {code} ({mapping.names.get(code, '')}): not evaluated, {why}", file=sys.stderr)
    temperature = None
    if args.fit_temperature:
        from ...eval.evaluate import fit_temperature_tables

        temperature, n = fit_temperature_tables(
            *args.fit_temperature, id_column=args.id_column, mapping=mapping
        )
        print(f"temperature {temperature:.3f} fitted on {n} records", file=sys.stderr)
    from ...errors import ECGFounderError

    common: dict[str, Any] = dict(
        id_column=args.id_column,
        temperature=temperature,
        label_columns=args.label_columns.split(",") if args.label_columns else None,
        patient_column=args.patient_column,
        thresholds=thresholds,
        n_boot=args.bootstrap,
        seed=args.seed,
        task=args.task,
        min_count=args.min_count,
    )
    if args.by:
        return _run_subgroups(args, predictions, common)
    try:
        report = evaluate_tables(
            predictions, args.labels, include_low_counts=args.include_low_counts, **common
        )
    except ValueError as exc:
        raise ECGFounderError(f"{args.labels}: {exc}") from None
    paths = report.write(args.output_dir, plots=not args.no_plots)
    print(report.to_markdown())
    if report.extra.get("join_note"):
        print(f"note: {report.extra['join_note']}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0


def _run_subgroups(args: argparse.Namespace, predictions: Any, common: dict[str, Any]) -> int:
    from ...errors import ECGFounderError
    from ...eval.subgroups import evaluate_subgroups_tables

    try:
        edges = [float(v) for v in args.age_bands.split(",") if v.strip()]
    except ValueError:
        raise ECGFounderError(
            f"--age-bands: {args.age_bands!r} is not a comma-separated list of ages"
        ) from None
    covariates = None
    if args.records:
        import pandas as pd

        from ...io import read_demographics

        rows = read_demographics(args.records)
        for r in rows:
            if r["error"]:
                print(f"note: {r['record']}: age and sex not read ({r['error']})", file=sys.stderr)
        covariates = pd.DataFrame(rows).rename(columns={"record": args.id_column})
    if args.include_low_counts:
        print(
            "note: --include-low-counts applies to the overall macro means only; subgroup gaps never use "
            "groups with low counts",
            file=sys.stderr,
        )
    try:
        report = evaluate_subgroups_tables(
            predictions,
            args.labels,
            [c.strip() for c in args.by.split(",") if c.strip()],
            covariates=covariates,
            age_bands=edges,
            **common,
        )
    except ValueError as exc:
        raise ECGFounderError(f"{args.labels}: {exc}") from None
    paths = report.overall.write(args.output_dir, plots=not args.no_plots)
    paths.update(report.write(args.output_dir))
    print(report.overall.to_markdown())
    print(report.to_markdown())
    if report.overall.extra.get("join_note"):
        print(f"note: {report.overall.extra['join_note']}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0
