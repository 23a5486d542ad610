"""``ecgfounder train``: fine-tune, linear-probe or train from scratch (torchrun for many GPUs)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..common import add_train_options, train_overrides

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="fine-tune, linear-probe or train from scratch (torchrun for many GPUs)")
    p.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="K-fold cross-validation: one run per fold, out-of-fold predictions pooled and evaluated",
    )
    add_train_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ...train import load_config, resume, train

    overrides = train_overrides(args)
    if args.resume:
        out = resume(args.resume, **overrides)
    else:
        cfg = load_config(args.config, overrides)
        if cfg.teacher:
            from ...errors import ECGFounderError

            raise ECGFounderError("the config names a teacher: run it with `ecgfounder distill`")
        if args.folds:
            from ...train import cross_validate

            out = cross_validate(cfg, args.folds)
        else:
            out = train(cfg)
    print(f"run directory: {out}", file=sys.stderr)
    return 0
