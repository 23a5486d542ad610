"""``ecgfounder conformal``: fit split-conformal label sets on held-out predictions."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "conformal",
        help="fit conformal label sets (coverage guarantee) on validation predictions",
        description="One-of-N models: sets that hold the true class with probability >= 1 - alpha; "
        "multi-label: per-label thresholds that miss a present label with probability "
        "<= alpha. Valid for records exchangeable with the calibration records.",
    )
    p.add_argument(
        "--predictions", required=True, help="`ecgfounder predict` output on calibration (validation) records"
    )
    p.add_argument("--labels", required=True, help="their 0/1 labels: record + one column per label")
    p.add_argument("--alpha", type=float, default=0.1, help="error rate (default 0.1: 90%% coverage)")
    p.add_argument(
        "--kind",
        choices=("auto", "multiclass", "multilabel"),
        default="auto",
        help="prediction sets over one-of-N classes or per label (default auto: from the labels)",
    )
    p.add_argument(
        "--max-set-size",
        type=int,
        metavar="K",
        help="sets larger than K abstain (default: half the labels for one-of-N, never for multi-label)",
    )
    p.add_argument(
        "--id-column", default="record", help="the column naming each record in both tables (default record)"
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE.json", help="the calibrated conformal predictor (JSON)"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...eval.conformal import fit_conformal_tables

    sets = fit_conformal_tables(
        args.predictions,
        args.labels,
        alpha=args.alpha,
        id_column=args.id_column,
        kind=args.kind,
        max_set_size=args.max_set_size,
    )
    path = sets.save(args.output)
    print(
        f"{sets.kind} conformal sets on {sets.n_calibration} records, alpha {sets.alpha:g} -> {path}\n"
        f"guarantee: {sets.guarantee()}",
        file=sys.stderr,
    )
    return 0
