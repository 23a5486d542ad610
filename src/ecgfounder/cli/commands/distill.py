"""``ecgfounder distill``: train a small student on a teacher's outputs (cross-lead too)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..common import add_train_options, add_verbose, data_setting, quiet_third_party, train_overrides

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "distill",
        help="train a small student on a teacher's outputs (cross-lead too)",
        description="Soft targets from --teacher on --data (any inputs predict takes, "
        "unlabelled, or a data-set layout such as cinc2017:DIR); labels where "
        "given (--labels FILE.csv or a labelled layout) can join with --hard-weight. "
        "Writes best/last.safetensors and distill_report.{json,md} in --out.",
    )
    p.add_argument(
        "--student",
        metavar="PRESET|FILE",
        help="student architecture: a preset (nano, micro, tiny, small...) or a .json/.yaml of Net1D fields",
    )
    p.add_argument(
        "--data",
        nargs="+",
        metavar="INPUT",
        help="ECG files, folders, globs or a manifest of paths (unlabelled), or one layout "
        "such as cinc2017:DIR / ludb:DIR",
    )
    p.add_argument(
        "--labels",
        metavar="FILE.csv",
        help="manifest CSV of the records (path + label columns named as the teacher's labels)",
    )
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: the config's output_dir)")
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
    from ...train.distill import distill, resume_distill

    overrides = train_overrides(args)
    if args.student:
        overrides["init"] = args.student
    if args.out:
        overrides["output_dir"] = args.out
    if args.labels:
        if args.data:
            raise ECGFounderError("give the records either with --data or in the --labels manifest, not both")
        overrides["manifest"] = args.labels
    elif args.data:
        overrides.update(data_setting(args.data))
    if args.resume:
        out = resume_distill(args.resume, **overrides)
    else:
        cfg = load_config(args.config, overrides)
        if not cfg.teacher:
            raise ECGFounderError("no teacher: give --teacher MODEL (a registered model or a model file)")
        out = distill(cfg)
    print(f"run directory: {out}", file=sys.stderr)
    report = out / "distill_report.md"
    if report.is_file():
        print(report.read_text())
    return 0
