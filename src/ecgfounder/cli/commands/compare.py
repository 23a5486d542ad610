"""``ecgfounder compare``: foundation models side by side on your data, paired and with intervals."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..common import add_verbose, quiet_third_party

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare",
        help="compare foundation models on the same split: probe or fine-tune, paired intervals",
        description="Each --models entry (a registered name, a model file, or random:NAME for the "
        "architecture with random weights) reads the same records through its own input contract "
        "and preparation, is fitted to the task the same way on the same training records "
        "(--probe: logistic regression on frozen embeddings; --finetune: new head, every weight), "
        "and is scored on the same test records: per-label AUROC and average precision with "
        "bootstrap intervals, paired differences against the first model (paired bootstrap, and "
        "DeLong for AUROC), parameters, FLOPs and records/s on this machine. A record or patient in "
        "two splits is an error. Writes compare.md, compare.json, per_label.csv, paired.csv and "
        "compare.png to --out.",
    )
    p.add_argument("--models", required=True, help="comma-separated models (the first is the reference)")
    p.add_argument(
        "--data", required=True, metavar="LAYOUT_OR_CSV", help="ludb:DIR, cinc2017:DIR... or a manifest CSV"
    )
    p.add_argument("--task", default=None, help="multiclass or multilabel (default: the layout's)")
    p.add_argument(
        "--label-columns", dest="label_columns", help="comma-separated label columns (layout-specific)"
    )
    p.add_argument("--splits", help="a split file (`ecgfounder split`); default: the layout's seeded split")
    p.add_argument(
        "--fold", type=int, help="with a split file with folds: fold K validates, the others train"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--probe", dest="mode", action="store_const", const="probe", help="linear probe (default)"
    )
    mode.add_argument(
        "--finetune", dest="mode", action="store_const", const="finetune", help="fine-tune every weight"
    )
    p.add_argument(
        "--label-budget", type=int, dest="label_budget", help="training records kept (stratified draw)"
    )
    p.add_argument("--limit", type=int, help="use at most this many records of the data set")
    p.add_argument(
        "--test-fraction", type=float, default=0.1, dest="test_fraction", help="the layout split's test share"
    )
    p.add_argument(
        "--val-fraction", type=float, default=0.1, dest="val_fraction", help="its validation share"
    )
    p.add_argument(
        "--min-count",
        type=int,
        default=5,
        dest="min_count",
        help="test positives and negatives a label needs for an interval and the macro mean",
    )
    p.add_argument("--lead", help="the lead a one-lead model reads from multi-lead records")
    p.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs (the best on validation kept)")
    p.add_argument(
        "--lr", type=float, default=1e-4, help="fine-tuning learning rate (the same for every model)"
    )
    p.add_argument("--batch-size", type=int, default=16, dest="batch_size", help="windows per forward pass")
    p.add_argument("--n-boot", type=int, default=1000, dest="n_boot", help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the draws, the random controls")
    p.add_argument("--workers", type=int, default=0, help="processes reading and preparing records")
    p.add_argument("--out", default="runs/compare", metavar="DIR", help="folder of the tables and figure")
    add_verbose(p)
    p.set_defaults(func=run, mode="probe")
    return p


def run(args: argparse.Namespace) -> int:
    with quiet_third_party(args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ...train.compare import CompareOptions, compare

    layout = {}
    if args.data.endswith(".csv"):
        layout["manifest"] = args.data
    else:
        layout["data"] = args.data
    task = args.task or ("multiclass" if args.data.startswith("cinc2017:") else "multilabel")
    options = CompareOptions(
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        task=task,
        label_columns=tuple(c.strip() for c in args.label_columns.split(",")) if args.label_columns else None,
        splits=args.splits,
        fold=args.fold,
        mode=args.mode,
        label_budget=args.label_budget,
        limit=args.limit,
        lead=args.lead,
        seed=args.seed,
        n_boot=args.n_boot,
        batch_size=args.batch_size,
        epochs=args.epochs,
        lr=args.lr,
        workers=args.workers,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        min_count=args.min_count,
        **layout,
    )
    result = compare(options, args.out, progress=lambda m: print(m, file=sys.stderr))
    for row in result.models:
        lo, hi = row["macro_auroc_ci"]
        print(f"{row['model']}: macro AUROC {row['macro_auroc']:.3f} ({lo:.3f}-{hi:.3f})")
    for name, reason in result.skipped.items():
        print(f"not compared: {name}: {reason}", file=sys.stderr)
    print(
        f"wrote {args.out}/compare.md, compare.json, per_label.csv, paired.csv, compare.png", file=sys.stderr
    )
    return 1 if result.skipped else 0
