"""``ecgfounder measure``: heart rate, PR, QRS, QT, QTc and axes of resting ECGs, with flags."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "measure", help="clinical measurements: HR, PR, QRS, QT, QTc, P/QRS/T axes (with flags)"
    )
    p.add_argument(
        "inputs", nargs="+", help="ECG files, folders, globs or a manifest (as predict takes them)"
    )
    p.add_argument("-o", "--output", help="CSV, JSON lines or Parquet file (default: CSV on stdout)")
    p.add_argument(
        "--format",
        choices=["csv", "jsonl", "parquet", "fhir"],
        help="output format (default: from the file name); fhir: an HL7 FHIR R4 Bundle per record, one a "
        "line (docs/interop.md)",
    )
    p.add_argument(
        "--subject", metavar="REFERENCE", help="with --format fhir: the subject (e.g. Patient/123)"
    )
    p.add_argument(
        "--method",
        choices=["unet", "neurokit"],
        default="unet",
        help="wave delineation: the bundled LUDB-trained U-Net (default) or neurokit2 (extra 'measure')",
    )
    p.add_argument(
        "--agree",
        type=int,
        default=1,
        metavar="K",
        help="global onset/offset = K-th earliest/latest over the leads (default 1: the IEC definition)",
    )
    p.add_argument("--fs", type=float, help="sampling rate, for files that do not state it (CSV, .npy)")
    p.add_argument("--leads", help="comma-separated lead names, for files that do not name them")
    p.add_argument("--units", help="signal units for files that do not state them (default mV)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...infer.writers import TableWriter, table_format
    from ...measurement import measure_inputs

    fhir = args.format == "fhir"
    if fhir:
        import json

        from ...interop.fhir import measurement_bundle

        out = open(args.output, "w", encoding="utf-8", newline="\n") if args.output else sys.stdout
    else:
        writer = TableWriter(args.output, table_format(args.output, args.format))
    failed = 0
    try:
        for row in measure_inputs(
            args.inputs,
            method=args.method,
            agree=args.agree,
            fs=args.fs,
            leads=args.leads.split(",") if args.leads else None,
            units=args.units,
        ):
            if row["error"]:
                failed += 1
                print(f"error: {row['record']}: {row['error']}", file=sys.stderr)
                if fhir:
                    continue
            if fhir:
                bundle = measurement_bundle(row, method=args.method, subject=args.subject)
                out.write(json.dumps(bundle, separators=(",", ":")) + "\n")
            else:
                writer.write(row)
    finally:
        if not fhir:
            writer.close()
        elif args.output:
            out.close()
    return 1 if failed else 0
