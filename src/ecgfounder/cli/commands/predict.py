"""``ecgfounder predict``: probabilities per label (named) for ECG files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..common import scoring_options, make_predictor

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="probabilities per label (named) for ECG files")
    scoring_options(p)
    p.add_argument("--output", "-o", help="output file (default: CSV on stdout)")
    p.add_argument("--format", choices=["csv", "jsonl", "parquet"],
                   help="output format (default: from the file name, else csv)")
    p.add_argument("--aggregate", choices=["mean", "max"], default="mean",
                   help="how window probabilities make a record's (default: mean)")
    p.add_argument("--threshold", type=float, help="one decision threshold for every label")
    p.add_argument("--thresholds", metavar="FILE",
                   help="per-label thresholds: JSON {label: threshold} or CSV label,threshold")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...infer.writers import TableWriter, table_format

    predictor = make_predictor(args)
    writer = TableWriter(args.output, table_format(args.output, args.format))
    failed = 0
    try:
        for row in predictor.iter_predict(args.inputs, per_window=args.per_window):
            failed += bool(row["error"])
            writer.write(row)
    finally:
        writer.close()
    if args.output:
        print(f"wrote {writer.count} row(s) to {args.output}; {failed} input(s) failed", file=sys.stderr)
    return 1 if failed else 0
