"""``ecgfounder learning-curve``: performance against the number of labelled records."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..common import add_train_options, add_verbose, data_setting, quiet_third_party, train_overrides

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "learning-curve",
        help="test performance against the number of labelled records, for several starts",
        description="Train the --config task from each --starts (a preset from scratch, a "
        "pretrained checkpoint, a registered model) on --draws stratified draws of each "
        "--budgets number of training records (0: all), validation and test splits fixed; "
        "writes runs.csv, curve.csv (mean, sd, 95%% interval per budget), curve.png and "
        "needed.csv (smallest budget reaching each --targets value). An interrupted curve "
        "resumes: finished runs are kept.",
    )
    p.add_argument(
        "--data", nargs="+", metavar="INPUT", help="a labelled layout (cinc2017:DIR...) or manifest"
    )
    p.add_argument("--starts", required=True, help="comma-separated starts: presets, model names, files")
    p.add_argument(
        "--budgets", default="50,100,200,500,1000,0", help="comma-separated record counts (0: all)"
    )
    p.add_argument("--draws", type=int, default=3, help="draws per budget")
    p.add_argument("--curve-metric", dest="curve_metric", help="test metric to plot (default: the task's)")
    p.add_argument("--targets", default="", help="comma-separated metric values: budget needed for each")
    p.add_argument(
        "--min-steps",
        type=int,
        default=0,
        help="small budgets train for more epochs: at least this many steps (at most 40 epochs)",
    )
    p.add_argument(
        "--summarise-only",
        action="store_true",
        help="train nothing: table and plot of the points already finished",
    )
    p.add_argument(
        "--out",
        default="runs/learning-curve",
        metavar="DIR",
        help="folder of the runs (one per start, budget and draw), tables and plot",
    )
    add_train_options(p)
    add_verbose(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    with quiet_third_party(args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ...errors import ECGFounderError
    from ...train import load_config
    from ...train.curve import learning_curve

    overrides = train_overrides(args)
    if args.data:
        setting = data_setting(args.data)
        if "inputs" in setting:
            if len(args.data) != 1 or not args.data[0].endswith(".csv"):
                raise ECGFounderError(
                    "a learning curve needs labels: a layout (cinc2017:DIR...) or a manifest CSV"
                )
            setting = {"manifest": args.data[0]}
        overrides.update(setting)
    cfg = load_config(args.config, overrides)
    try:
        budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
        targets = [float(t) for t in args.targets.split(",") if t.strip()]
    except ValueError:
        raise ECGFounderError(
            "--budgets takes whole numbers and --targets numbers, comma-separated"
        ) from None
    result = learning_curve(
        cfg,
        starts=[s.strip() for s in args.starts.split(",") if s.strip()],
        budgets=budgets,
        draws=args.draws,
        out=args.out,
        metric=args.curve_metric,
        targets=targets,
        min_steps=args.min_steps,
        train_missing=not args.summarise_only,
        log=lambda msg: print(msg, file=sys.stderr),
    )
    print(f"{'start':<32} {'budget':>7} {'draws':>5} {result['metric']:>10} 95% interval")
    for r in result["summary"]:
        ci = f"{r['ci_low']:.3f}-{r['ci_high']:.3f}" if r["draws"] > 1 else "-"
        print(f"{r['start']:<32} {r['budget']:>7} {r['draws']:>5} {r['mean']:>10.4f} {ci}")
    for n in result["needed"]:
        print(
            f"{n['start']}: {result['metric']} >= {n['target']} needs "
            f"{n['budget'] or 'more than the largest budget'}"
        )
    print(f"curve: {args.out}/curve.png", file=sys.stderr)
    return 0
